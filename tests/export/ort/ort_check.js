// Runs an exported model with ONNX Runtime (onnxruntime-node, CPU) on the
// reference batch `qhost export --reference PREFIX` wrote, and compares its
// logits with qhost's: |ort - qhost| <= rtol * (1 + max|qhost|) everywhere.
//   node ort_check.js MODEL.onnx PREFIX [rtol=1e-4] [optimized]
// Prints one line with max|diff|; exits 1 when the logits differ more.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// A little-endian float32 .npy file (what qhost export writes): {shape, data}.
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(path + ': not a .npy file');
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  if (!header.includes("'descr': '<f4'")) throw new Error(path + ': not float32: ' + header);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const start = 10 + headerLen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return {shape, data};
}

async function main() {
  const [model, prefix, rtolArg, mode] = process.argv.slice(2);
  const rtol = rtolArg ? Number(rtolArg) : 1e-4;
  const x = readNpy(prefix + '.input.npy');
  const ref = readNpy(prefix + '.logits.npy');
  // Graph optimisations off by default: the model runs as written, operator by
  // operator. `optimized`: ONNX Runtime's full optimisation, which may fuse
  // QDQ pairs around Conv into integer kernels (QLinearConv).
  const level = mode === 'optimized' ? 'all' : 'disabled';
  const session = await ort.InferenceSession.create(model, {graphOptimizationLevel: level});
  const out = await session.run({input: new ort.Tensor('float32', x.data, x.shape)});
  const y = out.logits;
  if (y.dims.join(',') !== ref.shape.join(',')) throw new Error('logits shape ' + y.dims + ' vs ' + ref.shape);
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < ref.data.length; ++i) {
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
    maxDiff = Math.max(maxDiff, Math.abs(ref.data[i] - y.data[i]));
  }
  const tol = rtol * (1 + maxRef);
  // Samples whose logits differ by more than the tolerance (a level flip in an
  // early layer shows as a few samples far off, a wrong export as all of them).
  const perSample = ref.data.length / ref.shape[0];
  const off = [];
  for (let s = 0; s < ref.shape[0]; ++s) {
    let d = 0;
    for (let j = s * perSample; j < (s + 1) * perSample; ++j) d = Math.max(d, Math.abs(ref.data[j] - y.data[j]));
    if (!(d <= tol)) off.push(s);
  }
  const ok = maxDiff <= tol && Number.isFinite(maxDiff);
  console.log(`ort_check: ${model}: onnxruntime ${ort.env.versions.node} (optimisation ${level}), logits ${y.dims.join('x')}, ` +
              `max|qhost| ${maxRef.toPrecision(6)}, max|diff| ${maxDiff.toExponential(3)}, tolerance ${tol.toExponential(3)}: ` +
              (ok ? 'OK' : `FAILED (samples over it: ${off.length} of ${ref.shape[0]}: ${off.slice(0, 10).join(', ')})`));
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error('ort_check: ' + e.message);
  process.exit(2);
});
