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
  for await (const event of source) {
    const { type, data } = event;
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
      yield `FAIL ${where(data)}${name}\n${describeError(data.details?.error)}\n`;
    }
  }
  yield `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`;
}
