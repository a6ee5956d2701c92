#!/usr/bin/env node
// uwcore command-line entry (the compiled core lives in dist/).
import { main } from '../dist/core/cli.js';

await main(process.argv.slice(2));
