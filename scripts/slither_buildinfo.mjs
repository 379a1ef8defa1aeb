#!/usr/bin/env node
// Write the Hardhat build-info file Slither reads (DESIGN §6), from the same solc-js compilation as
// scripts/compile_contracts.mjs:
//   <dir>/hardhat.config.js                  (only has to exist)
//   <dir>/artifacts/build-info/<id>.json     {_format: "hh-sol-build-info-1", id, solcVersion,
//                                             solcLongVersion, input, output}
// Old build-info files in <dir> are removed first.
//   node scripts/slither_buildinfo.mjs <dir>
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

import { SOLC_VERSION, compile } from "./compile_contracts.mjs";

const require = createRequire(import.meta.url);
const solc = require("solc");

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: node scripts/slither_buildinfo.mjs <dir>\n");
  process.exit(2);
}
const { input, output } = compile();
const id = crypto.createHash("md5").update(JSON.stringify(input)).digest("hex");
const buildInfoDir = path.join(dir, "artifacts", "build-info");
fs.rmSync(buildInfoDir, { recursive: true, force: true });
fs.mkdirSync(buildInfoDir, { recursive: true });
fs.writeFileSync(path.join(dir, "hardhat.config.js"), "module.exports = {};\n");
const buildInfo = {
  _format: "hh-sol-build-info-1",
  id,
  solcVersion: SOLC_VERSION,
  solcLongVersion: solc.version().replace(/\.Emscripten\.clang$/, ""),
  input,
  output,
};
fs.writeFileSync(path.join(buildInfoDir, `${id}.json`), JSON.stringify(buildInfo));
process.stdout.write(`wrote ${path.join(buildInfoDir, `${id}.json`)}\n`);
