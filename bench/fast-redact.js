// The baseline for the engine bench: what a Node service does to redact a JSON body with
// fast-redact (https://github.com/davidmarkclements/fast-redact): JSON.parse, redact the
// paths, JSON.stringify. Prints one JSON line: {"bytes":N,"seconds":S,"mbps":M}.
// usage: node fast-redact.js FILE PATH[,PATH...] [ROUNDS]
'use strict';
const fs = require('fs');
const fastRedact = require('fast-redact');

const [file, pathsArg, roundsArg] = process.argv.slice(2);
if (!file || !pathsArg) {
  console.error('usage: node fast-redact.js FILE PATH[,PATH...] [ROUNDS]');
  process.exit(2);
}
const rounds = Number(roundsArg || 3);
const text = fs.readFileSync(file, 'utf8');
const bytes = Buffer.byteLength(text);
// serialize: JSON.stringify is fast-redact's default; censor like our redact action
const redact = fastRedact({ paths: pathsArg.split(','), censor: '[REDACTED]' });

let best = Infinity, out = '';
for (let r = 0; r < rounds; r++) {
  const t0 = process.hrtime.bigint();
  out = redact(JSON.parse(text));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s < best) best = s;
}
if (!out.includes('[REDACTED]')) {
  console.error('fast-redact: nothing was redacted; the paths do not match the input');
  process.exit(1);
}
console.log(JSON.stringify({ bytes, seconds: best, mbps: bytes / 1e6 / best }));
