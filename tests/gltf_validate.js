// Validate a glTF/GLB file with the Khronos glTF-Validator (npm package `gltf-validator`)
// and print its report as JSON.  Usage: node gltf_validate.js <gltf-validator module dir> <file>
"use strict";
const fs = require("fs");
const path = require("path");
const validator = require(path.resolve(process.argv[2]));
const file = process.argv[3];
validator
  .validateBytes(new Uint8Array(fs.readFileSync(file)), { uri: path.basename(file), maxIssues: 1000 })
  .then((report) => console.log(JSON.stringify(report)))
  .catch((error) => {
    console.error(String(error));
    process.exit(1);
  });
