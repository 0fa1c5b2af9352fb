// Runs an exported model with ONNX Runtime (onnxruntime-node, CPU) on the
// first N test images of an IDX dataset (Fashion-MNIST) and compares its top-1
// predictions with qhost's on the same images (`qhost eval --max-batches B
// --dump-logits FILE.npy`).
//   node idx_agree.js MODEL.onnx QHOST_LOGITS.npy IDX_ROOT N MEAN STD
// The images are decoded here, independently of qhost, as qhost's evaluation
// transform does for a [data] type = "idx" set with size = its native size:
// no crop, no flip, x = float32((v / 255 - mean) / std) computed in double.
// Prints the top-1 of both against the labels, the number of samples whose
// argmax differs and, for each of those, both runtimes' margins between their
// two largest logits; exits 1 when any top-1 differs.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

// A little-endian float32 .npy file (what qhost writes): {shape, data}.
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not a .npy file');
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  if (!header.includes("'descr': '<f4'")) throw new Error(file + ': not float32: ' + header);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const start = 10 + headerLen;
  return {shape, data: new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length))};
}

// An unsigned-byte IDX file, raw or gzip (as the idx dataset plugin accepts): {dims, bytes}.
function readIdx(root, name) {
  let file = path.join(root, name);
  if (!fs.existsSync(file)) file += '.gz';
  let buf = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08) throw new Error(file + ': not an unsigned-byte IDX file');
  const rank = buf[3];
  const dims = [];
  for (let i = 0; i < rank; ++i) dims.push(buf.readUInt32BE(4 + 4 * i));
  return {dims, bytes: buf.subarray(4 + 4 * rank)};
}

// The two largest values of a row: [index of the largest, largest - second].
function top2(row) {
  let a = 0;
  for (let j = 1; j < row.length; ++j) if (row[j] > row[a]) a = j;
  let second = -Infinity;
  for (let j = 0; j < row.length; ++j) if (j !== a && row[j] > second) second = row[j];
  return [a, row[a] - second];
}

async function main() {
  const [model, logitsFile, root, nArg, meanArg, stdArg] = process.argv.slice(2);
  const n = Number(nArg), mean = Number(meanArg), sd = Number(stdArg);
  const images = readIdx(root, 't10k-images-idx3-ubyte');
  const labels = readIdx(root, 't10k-labels-idx1-ubyte');
  const [, h, w] = images.dims;
  const ref = readNpy(logitsFile);
  if (ref.shape[0] !== n) throw new Error(`${logitsFile} holds ${ref.shape[0]} samples, expected ${n}`);
  const classes = ref.shape[1];
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; ++v) lut[v] = (v / 255 - mean) / sd;
  const x = new Float32Array(n * h * w);
  for (let i = 0; i < n * h * w; ++i) x[i] = lut[images.bytes[i]];

  const session = await ort.InferenceSession.create(model, {graphOptimizationLevel: 'disabled'});
  const batch = 100;
  const y = new Float32Array(n * classes);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const input = new ort.Tensor('float32', x.subarray(s * h * w, (s + m) * h * w), [m, 1, h, w]);
    const out = await session.run({input});
    y.set(out.logits.data, s * classes);
  }

  let ortCorrect = 0, qhostCorrect = 0, maxDiff = 0, maxRef = 0, moved = 0;
  for (let i = 0; i < ref.data.length; ++i) maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
  // ort_check.js's tolerance: a sample over it has had an activation land on a
  // neighbouring level in one runtime (README "Deploy"), whether or not its top-1 changed.
  const tol = 1e-4 * (1 + maxRef);
  const differ = [];
  for (let s = 0; s < n; ++s) {
    const q = ref.data.subarray(s * classes, (s + 1) * classes);
    const o = y.subarray(s * classes, (s + 1) * classes);
    let d = 0;
    for (let j = 0; j < classes; ++j) d = Math.max(d, Math.abs(q[j] - o[j]));
    maxDiff = Math.max(maxDiff, d);
    if (!(d <= tol)) ++moved;
    const [qa, qm] = top2(q), [oa, om] = top2(o);
    if (qa === labels.bytes[s]) ++qhostCorrect;
    if (oa === labels.bytes[s]) ++ortCorrect;
    if (qa !== oa) differ.push(`#${s}: qhost ${qa} (margin ${qm.toExponential(2)}), ort ${oa} (margin ${om.toExponential(2)})`);
  }
  console.log(`idx_agree: ${model}: onnxruntime ${ort.env.versions.node}, ${n} test images of ${root}: ` +
              `top-1 qhost ${(100 * qhostCorrect / n).toFixed(2)} %, onnxruntime ${(100 * ortCorrect / n).toFixed(2)} %, ` +
              `max|logit diff| ${maxDiff.toExponential(3)} (logits beyond ${tol.toExponential(2)} on ${moved} samples), top-1 differs on ${differ.length} of ${n}` +
              (differ.length ? ': ' + differ.join('; ') : ''));
  process.exit(differ.length === 0 && Number.isFinite(maxDiff) ? 0 : 1);
}

main().catch((e) => {
  console.error('idx_agree: ' + e.message);
  process.exit(2);
});
