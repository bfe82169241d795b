// {{name}}: an iApp for Veil (and iExec). Change `compute`; keep the rest.
//
// What a worker gives the app:
//   args             process.argv.slice(2)
//   protected data   $IEXEC_IN/$IEXEC_DATASET_FILENAME (TEE tasks): a DataProtector zip, or any file
//   input files      $IEXEC_IN/$IEXEC_INPUT_FILE_NAME_1 … _$IEXEC_INPUT_FILES_NUMBER
//   secrets          $IEXEC_REQUESTER_SECRET_<n>, $IEXEC_APP_DEVELOPER_SECRET (TEE tasks)
// What it must leave: its result files in $IEXEC_OUT, and $IEXEC_OUT/computed.json naming the file
// whose content is the task's deterministic result.
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const IEXEC_IN = process.env.IEXEC_IN;
const IEXEC_OUT = process.env.IEXEC_OUT;

// The entries of a zip archive (central directory), as name → bytes.
function unzip(buf) {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) return null;
  const entries = {};
  let p = buf.readUInt32LE(eocd + 16);
  for (let i = 0; i < buf.readUInt16LE(eocd + 10); i++) {
    const method = buf.readUInt16LE(p + 10);
    const size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const skip = nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
    const name = buf.toString("utf8", p + 46, p + 46 + nameLen);
    const local = buf.readUInt32LE(p + 42);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + size);
    if (!name.endsWith("/")) entries[name] = method === 8 ? zlib.inflateRawSync(raw) : raw;
    p += 46 + skip;
  }
  return entries;
}

// A DataProtector value: string (u32 length + UTF-8), bool (1 byte), number (f64) or i128.
function borsh(b) {
  if (b.length >= 4 && b.readUInt32LE(0) === b.length - 4) return b.toString("utf8", 4);
  if (b.length === 1) return b[0] !== 0;
  if (b.length === 8) return b.readDoubleLE(0);
  if (b.length === 16) return (b.readBigInt64LE(8) << 64n) + b.readBigUInt64LE(0);
  return b.toString("hex");
}

function protectedData() {
  const name = process.env.IEXEC_DATASET_FILENAME;
  if (!name) return null;
  const buf = fs.readFileSync(path.join(IEXEC_IN, name));
  const entries = buf.readUInt32LE(0) === 0x04034b50 ? unzip(buf) : null;
  if (!entries) return { file: `${buf.length} bytes` };
  return Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, borsh(v)]));
}

function inputFiles() {
  const n = Number(process.env.IEXEC_INPUT_FILES_NUMBER || "0");
  const out = [];
  for (let i = 1; i <= n; i++) {
    const f = process.env[`IEXEC_INPUT_FILE_NAME_${i}`];
    out.push([f, fs.statSync(path.join(IEXEC_IN, f)).size]);
  }
  return out;
}

// Secret lengths only: a secret's value never belongs in logs or results.
function requesterSecrets() {
  return Object.keys(process.env)
    .filter((k) => k.startsWith("IEXEC_REQUESTER_SECRET_"))
    .map((k) => [Number(k.split("_").pop()), process.env[k].length])
    .sort((a, b) => a[0] - b[0]);
}

function compute(args, data, files, secrets) {
  const lines = [`Hello, ${args.join(" ") || "World"}!`];
  if (data !== null) {
    const kv = Object.keys(data).sort().map((k) => `${k}=${data[k]}`);
    lines.push(`protected data: ${kv.join(", ")}`);
  }
  for (const [name, size] of files) lines.push(`input file ${name}: ${size} bytes`);
  for (const [i, length] of secrets) lines.push(`requester secret ${i}: ${length} characters`);
  return lines.join("\n") + "\n";
}

const args = process.argv.slice(2);
console.log(`{{name}} starts with ${args.length} argument(s)`);
const text = compute(args, protectedData(), inputFiles(), requesterSecrets());
const result = path.join(IEXEC_OUT, "result.txt");
fs.writeFileSync(result, text);
fs.writeFileSync(path.join(IEXEC_OUT, "computed.json"), JSON.stringify({ "deterministic-output-path": result }));
console.log(`result written: ${Buffer.byteLength(text)} bytes`);
