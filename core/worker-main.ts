// Entry point of a cluster worker process: waits for the master's boot message, then serves.
import { runWorker } from './run.js';

void runWorker();
