// Unit test: readable log lines for terminals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prettyLine } from '../../core/logger.js';

test('pretty lines: time, level, plugin/worker tag, message, extra fields', () => {
  const line = prettyLine(JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1, 12, 0, 1, 5), pid: 1, plugin: 'http', worker: 2, msg: 'hello', port: 80 }), false);
  assert.equal(line, '12:00:01.005 WARN  [http w2] hello port=80\n');
  assert.equal(prettyLine('not json', false), 'not json');
});
