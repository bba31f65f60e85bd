// Typesets TeX with KaTeX at build time, for scripts/docs/hooks.py.
// Reads a JSON list of [tex, displayMode] pairs on stdin and writes the
// JSON list of their HTML on stdout. A formula KaTeX cannot parse is an
// error (exit 1, with the formula), so the site never shows raw TeX.
"use strict";
const katex = require("katex");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = [];
  for (const [tex, displayMode] of JSON.parse(input)) {
    try {
      out.push(
        katex.renderToString(tex, {
          displayMode,
          throwOnError: true,
          strict: "error",
          output: "htmlAndMathml",
        }),
      );
    } catch (err) {
      process.stderr.write(`KaTeX: ${err.message}\nin: ${tex}\n`);
      process.exit(1);
    }
  }
  process.stdout.write(JSON.stringify(out));
});
