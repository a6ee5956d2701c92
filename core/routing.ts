// The internal routing engine (route, route-run, route-if …): rules compiled once at startup,
// run in order per request; actions come from the router-action registry.
import type { RouteResult } from '../sdk/index.js';
import type { Ctx } from './context.js';
import type { Server } from './server.js';

export interface Router { run(ctx: Ctx): Promise<RouteResult> }

export interface RuleSource { option: string; value: string; where: string }

export function createRouter(_server: Server, _rules: RuleSource[]): Router {
  throw new Error('routing rules are not available yet');
}
