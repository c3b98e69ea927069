// A second validator for the manifest schema (spec §5): Ajv 8 in strict mode, JSON Schema
// 2020-12. Usage: node validate.js SCHEMA DOCS.json, where DOCS.json is a JSON list of
// manifests. Prints a JSON list with one boolean per manifest (true: the schema accepts it).
// Exits 2 when the schema does not compile under strict mode.
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020");

const ajv = new Ajv2020({ strict: true, allErrors: true });
let validate;
try {
  validate = ajv.compile(JSON.parse(fs.readFileSync(process.argv[2], "utf8")));
} catch (e) {
  process.stderr.write(`schema: ${e.message}\n`);
  process.exit(2);
}
const docs = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
process.stdout.write(JSON.stringify(docs.map((d) => validate(d))) + "\n");
