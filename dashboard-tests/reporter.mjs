// A node:test reporter for scripts/test-dashboard: one `ok   <test>` or
// `FAIL <test>` line per test (a failure followed by its error, indented),
// then `N passed, M failed` (and skipped/todo when there are any).
import { basename } from 'node:path';

function where(data) {
  return data.file ? `${basename(data.file, '.test.mjs')}: ` : '';
}

function describeError(error) {
  if (!error) return '';
  const inner = error.cause && error.code === 'ERR_TEST_FAILURE' ? error.cause : error;
  const text = (inner && (inner.stack || inner.message)) || String(inner);
  return text
    .split('\n')
    .filter((line) => !/node:internal|node_modules\/playwright-core/.test(line))
    .slice(0, 25)
    .map((line) => `       ${line}`)
    .join('\n');
}

export default async function* report(source) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  // What each file wrote to stderr: shown when the file itself failed
  // (it could not load, or crashed outside its tests).
  const stderr = new Map();
  for await (const event of source) {
    const { type, data } = event;
    if (type === 'test:stderr') {
      const lines = stderr.get(data.file) || [];
      lines.push(...String(data.message).split('\n'));
      stderr.set(data.file, lines.slice(-25));
      continue;
    }
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    if (data.details?.type === 'suite') continue;
    const name = data.file && data.name === data.file ? basename(data.file) + ' (the file itself)' : data.name;
    if (data.skip || data.todo) {
      skipped++;
      yield `skip ${where(data)}${name}\n`;
    } else if (type === 'test:pass') {
      passed++;
      yield `ok   ${where(data)}${name}\n`;
    } else {
      failed++;
      let why = describeError(data.details?.error);
      if (data.file && data.name === data.file && stderr.has(data.file)) {
        why += `\n${stderr.get(data.file).map((line) => `       ${line}`).join('\n')}`;
      }
      yield `FAIL ${where(data)}${name}\n${why}\n`;
    }
  }
  yield `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`;
}
