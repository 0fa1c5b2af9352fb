// ONNX Runtime (CPU) latency of an exported model vs the forward of the same
// checkpoint's fake-quantized model in qhost (tools/bench/fakequant_forward),
// same run: per repeat A (ONNX Runtime, full graph optimisation: QDQ pairs may
// become integer kernels), A' (ONNX Runtime, optimisation off: the graph as
// written) and B (qhost) alternate; each side times `iters` forwards after 3
// warm-up ones and reports their median; the table holds the median over the
// repeats, in ms per batch, and the ratios B / A. Not a test: numbers only.
//   node export_ort.js MODEL.onnx CHECKPOINT.h5 FAKEQUANT_FORWARD_EXE [--batches 1,16] [--repeats 5]
//        [--iters 10] [--threads 2]
// Run by tools/bench/export_ort.sh, which trains and exports the checkpoint.
'use strict';
const path = require('path');
const {execFileSync} = require('child_process');
const {createRequire} = require('module');
const ort = createRequire(path.join(__dirname, '../../tests/export/ort/package.json'))('onnxruntime-node');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// A deterministic N(0, 1)-ish input (Box-Muller over a small LCG): the values do not matter for timing.
function input(shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  let s = 12345;
  const u = () => ((s = (s * 1103515245 + 12345) % 2147483648) + 1) / 2147483649;
  for (let i = 0; i < n; ++i) x[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return new ort.Tensor('float32', x, shape);
}

async function timeOrt(session, x, iters) {
  for (let i = 0; i < 3; ++i) await session.run({input: x});
  const ms = [];
  for (let i = 0; i < iters; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run({input: x});
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ms);
}

function timeQhost(exe, checkpoint, batch, iters, threads) {
  const out = execFileSync(exe, [checkpoint, '--batch', String(batch), '--iters', String(iters), '--threads', String(threads)],
                           {encoding: 'utf8'});
  const m = out.match(/ms_per_batch ([0-9.]+)/);
  if (!m) throw new Error('fakequant_forward printed: ' + out);
  return Number(m[1]);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = {batches: '1,16', repeats: '5', iters: '10', threads: '2'};
  const pos = [];
  for (let i = 0; i < args.length; ++i) {
    if (args[i].startsWith('--')) opt[args[i].slice(2)] = args[++i];
    else pos.push(args[i]);
  }
  const [model, checkpoint, exe] = pos;
  const threads = Number(opt.threads), repeats = Number(opt.repeats), iters = Number(opt.iters);
  const make = (level) => ort.InferenceSession.create(model, {
    graphOptimizationLevel: level, intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential'});
  const full = await make('all'), plain = await make('disabled');
  // The sample shape from the model's input (dims after the batch one are fixed).
  const probe = execFileSync('/usr/bin/python3', ['-c',
    'import onnx,sys; m=onnx.load(sys.argv[1]); print(",".join(str(d.dim_value) for d in m.graph.input[0].type.tensor_type.shape.dim[1:]))',
    model], {encoding: 'utf8'}).trim().split(',').map(Number);
  console.log(`export_ort: ${model} (${checkpoint}), onnxruntime ${ort.env.versions.node}, ${threads} threads, ` +
              `input ${probe.join('x')}, ${repeats} repeats of A, A', B alternating, median of ${iters} timed forwards each`);
  console.log('batch | A: ORT optimised ms/batch | A\': ORT as written ms/batch | B: qhost fake-quant ms/batch | B / A | B / A\'');
  console.log('---|---|---|---|---|---');
  for (const batch of opt.batches.split(',').map(Number)) {
    const x = input([batch, ...probe]);
    const a = [], a2 = [], b = [];
    for (let r = 0; r < repeats; ++r) {
      a.push(await timeOrt(full, x, iters));
      a2.push(await timeOrt(plain, x, iters));
      b.push(timeQhost(exe, checkpoint, batch, iters, threads));
      console.error(`  batch ${batch} repeat ${r + 1}: A ${a[r].toFixed(1)} A' ${a2[r].toFixed(1)} B ${b[r].toFixed(1)} ms`);
    }
    const [ma, ma2, mb] = [median(a), median(a2), median(b)];
    console.log(`${batch} | ${ma.toFixed(1)} | ${ma2.toFixed(1)} | ${mb.toFixed(1)} | ${(mb / ma).toFixed(2)} | ${(mb / ma2).toFixed(2)}`);
  }
}

main().catch((e) => {
  console.error('export_ort: ' + e.message);
  process.exit(2);
});
