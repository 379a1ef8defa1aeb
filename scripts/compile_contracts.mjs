#!/usr/bin/env node
// Compile contracts_solidity/ with the pinned solc-js (standard JSON) and write one artifact per
// contract, {abi, bytecode, deployedBytecode, immutableReferences}, with sorted keys and a trailing
// newline (immutableReferences: the runtime code's byte ranges, [{start, length}] sorted by start,
// that the constructor fills with immutables, so a deployed contract's code can be compared with
// deployedBytecode with those ranges masked):
//   contracts_solidity/*.sol       -> channels/contracts/<Name>.json   (shipped in the Python package)
//   contracts_solidity/test/*.sol  -> tests/contracts/artifacts/<Name>.json (test harnesses only)
//
//   node scripts/compile_contracts.mjs           write the artifacts
//   node scripts/compile_contracts.mjs --check   compile in memory; exit 1 listing stale artifacts
//
// Imports of @openzeppelin/... resolve from node_modules. The same compilation (exported as
// `compile`) feeds scripts/slither_buildinfo.mjs.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const SOURCE_DIR = "contracts_solidity";
const PACKAGE_OUT = "channels/contracts";
const TEST_OUT = "tests/contracts/artifacts";
export const SOLC_VERSION = "0.8.37";

export const SETTINGS = {
  evmVersion: "shanghai",
  optimizer: { enabled: true, runs: 200 },
  viaIR: process.env.CISE_VIA_IR === "1",
  // The AST and full bytecode objects (with source maps) are for Slither's build-info.
  outputSelection: {
    "*": {
      "": ["ast"],
      "*": ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers"],
    },
  },
};

function listSources(dir) {
  const out = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...listSources(rel));
    else if (entry.name.endsWith(".sol")) out.push(rel);
  }
  return out.sort();
}

function findImport(importPath) {
  const candidates = [path.join(ROOT, importPath), path.join(ROOT, "node_modules", importPath)];
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `not found: ${importPath}` };
}

/** Compile everything; returns {input, output} with every source (imports included) in `input`. */
export function compile() {
  if (!solc.version().startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`solc ${solc.version()} is not the pinned ${SOLC_VERSION}`);
  }
  const sources = {};
  for (const rel of listSources(SOURCE_DIR)) {
    sources[rel] = { content: fs.readFileSync(path.join(ROOT, rel), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  // Warnings inside node_modules (OpenZeppelin) are not ours to fix; show only our own.
  for (const e of output.errors || []) {
    const file = e.sourceLocation?.file || "";
    if (e.severity === "error" || file.startsWith(`${SOURCE_DIR}/`)) process.stderr.write(`${e.formattedMessage}\n`);
  }
  if (errors.length) throw new Error(`solc failed with ${errors.length} error(s)`);
  // Put the imported sources into the input too, so that it is self-contained (Slither build-info).
  const fullSources = {};
  for (const name of Object.keys(output.sources).sort()) {
    fullSources[name] = sources[name] || { content: findImport(name).contents };
  }
  return { input: { ...input, sources: fullSources }, output };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  }
  return value;
}

/** solc's {astId: [{start, length}]} as one list of ranges sorted by start (ids are not stable). */
function immutableRanges(references) {
  const ranges = [];
  for (const refs of Object.values(references || {})) {
    for (const { start, length } of refs) ranges.push({ length, start });
  }
  return ranges.sort((a, b) => a.start - b.start);
}

/** Map of repo-relative artifact path -> file text. */
export function artifacts(output) {
  const files = {};
  for (const [source, contracts] of Object.entries(output.contracts)) {
    if (!source.startsWith(`${SOURCE_DIR}/`) || source.startsWith(`${SOURCE_DIR}/interfaces/`)) continue;
    const outDir = source.startsWith(`${SOURCE_DIR}/test/`) ? TEST_OUT : PACKAGE_OUT;
    for (const [name, c] of Object.entries(contracts)) {
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      const artifact = {
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
        immutableReferences: immutableRanges(c.evm.deployedBytecode.immutableReferences),
      };
      files[`${outDir}/${name}.json`] = `${JSON.stringify(sortKeys(artifact), null, 2)}\n`;
    }
  }
  return files;
}

function existingArtifacts() {
  const out = [];
  for (const dir of [PACKAGE_OUT, TEST_OUT]) {
    const abs = path.join(ROOT, dir);
    if (!fs.existsSync(abs)) continue;
    for (const f of fs.readdirSync(abs)) if (f.endsWith(".json")) out.push(`${dir}/${f}`);
  }
  return out.sort();
}

function main() {
  const check = process.argv.includes("--check");
  const { output } = compile();
  const files = artifacts(output);
  if (check) {
    const stale = [];
    for (const [rel, text] of Object.entries(files)) {
      const abs = path.join(ROOT, rel);
      if (!fs.existsSync(abs)) stale.push(`${rel} (missing)`);
      else if (fs.readFileSync(abs, "utf8") !== text) stale.push(`${rel} (differs)`);
    }
    for (const rel of existingArtifacts()) if (!(rel in files)) stale.push(`${rel} (no such contract)`);
    if (stale.length) {
      process.stderr.write(
        `stale contract artifacts, run: node scripts/compile_contracts.mjs\n  ${stale.join("\n  ")}\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`${Object.keys(files).length} artifacts up to date\n`);
    return;
  }
  for (const rel of existingArtifacts()) if (!(rel in files)) fs.rmSync(path.join(ROOT, rel));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(ROOT, rel)), { recursive: true });
    fs.writeFileSync(path.join(ROOT, rel), text);
    process.stdout.write(`wrote ${rel}\n`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main();
