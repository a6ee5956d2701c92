// Every UW_ERR_* code uwcore raises, and the error class that carries code, plugin and hook.
// A message says what went wrong and what to do, in one line.

export const Codes = {
  CONFIG_UNKNOWN_OPTION: 'UW_ERR_CONFIG_UNKNOWN_OPTION',
  CONFIG_UNSUPPORTED_OPTION: 'UW_ERR_CONFIG_UNSUPPORTED_OPTION',
  CONFIG_BAD_VALUE: 'UW_ERR_CONFIG_BAD_VALUE',
  CONFIG_FILE: 'UW_ERR_CONFIG_FILE',
  PLUGIN_NOT_FOUND: 'UW_ERR_PLUGIN_NOT_FOUND',
  PLUGIN_INVALID: 'UW_ERR_PLUGIN_INVALID',
  PLUGIN_LOAD: 'UW_ERR_PLUGIN_LOAD',
  PLUGIN_DUPLICATE: 'UW_ERR_PLUGIN_DUPLICATE',
  PLUGIN_OPTION_COLLISION: 'UW_ERR_PLUGIN_OPTION_COLLISION',
  PLUGIN_REQUIRES: 'UW_ERR_PLUGIN_REQUIRES',
  PLUGIN_CYCLE: 'UW_ERR_PLUGIN_CYCLE',
  PLUGIN_NOT_REQUIRED: 'UW_ERR_PLUGIN_NOT_REQUIRED',
  PLUGIN_TIMEOUT: 'UW_ERR_PLUGIN_TIMEOUT',
  PLUGIN_SETUP: 'UW_ERR_PLUGIN_SETUP',
  PLUGIN_NOT_IN_BUILD: 'UW_ERR_PLUGIN_NOT_IN_BUILD',
  PLUGIN: 'UW_ERR_PLUGIN',
  SDK_MISMATCH: 'UW_ERR_SDK_MISMATCH',
  HOOK_UNKNOWN: 'UW_ERR_HOOK_UNKNOWN',
  HOOK_SEALED: 'UW_ERR_HOOK_SEALED',
  HOOK_TAP_NAME: 'UW_ERR_HOOK_TAP_NAME',
  REGISTRY_DUPLICATE: 'UW_ERR_REGISTRY_DUPLICATE',
  APP_NOT_FOUND: 'UW_ERR_APP_NOT_FOUND',
  APP_LOAD: 'UW_ERR_APP_LOAD',
  APP_NOT_CALLABLE: 'UW_ERR_APP_NOT_CALLABLE',
  APP_NONE: 'UW_ERR_APP_NONE',
  APP_RESPONSE: 'UW_ERR_APP_RESPONSE',
  APP_THREW: 'UW_ERR_APP_THREW',
  LISTEN_IN_USE: 'UW_ERR_LISTEN_IN_USE',
  LISTEN: 'UW_ERR_LISTEN',
  PROTOCOL_UNKNOWN: 'UW_ERR_PROTOCOL_UNKNOWN',
  RPC: 'UW_ERR_RPC',
  RPC_UNKNOWN: 'UW_ERR_RPC_UNKNOWN',
  WORKER_START: 'UW_ERR_WORKER_START',
  NOT_ENABLED: 'UW_ERR_NOT_ENABLED',
  ROUTE: 'UW_ERR_ROUTE',
  ROUTE_LOOP: 'UW_ERR_ROUTE_LOOP',
  INTERNAL: 'UW_ERR_INTERNAL',
} as const;

export type Code = (typeof Codes)[keyof typeof Codes];

/** An error with a UW_ERR_* code, the plugin (or `core`) and the hook it came from. */
export class UwError extends Error {
  code: string;
  plugin: string;
  hook: string | undefined;
  /** process exit status when this stops startup (2 = usage, 1 = runtime). */
  exitCode: number;
  constructor(code: string, message: string, opts: { plugin?: string; hook?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UwError';
    this.code = code;
    this.plugin = opts.plugin ?? 'core';
    this.hook = opts.hook;
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** A usage error: exits 2. */
export function usageError(code: string, message: string, plugin = 'core'): UwError {
  return new UwError(code, message, { plugin, exitCode: 2 });
}

/** Tag an arbitrary thrown value with plugin and hook, keeping an existing code as pluginCode. */
export function tagError(err: unknown, plugin: string, hook: string): Error & { code: string; plugin: string; hook: string } {
  const e = (err instanceof Error ? err : new Error(String(err))) as Error & { code?: string; plugin?: string; hook?: string; pluginCode?: string };
  if (e.plugin === undefined) {
    if (e.code !== undefined && !String(e.code).startsWith('UW_ERR_')) e.pluginCode = e.code;
    if (e.code === undefined || !String(e.code).startsWith('UW_ERR_')) {
      try { e.code = Codes.PLUGIN; } catch { /* frozen */ }
    }
    try { e.plugin = plugin; e.hook = hook; } catch { /* frozen error object */ }
  }
  return e as Error & { code: string; plugin: string; hook: string };
}

/** The one line printed when startup fails. */
export function formatFatal(err: unknown): string {
  if (err instanceof UwError || (err instanceof Error && typeof (err as unknown as { code?: unknown }).code === 'string' && String((err as unknown as { code: string }).code).startsWith('UW_ERR_'))) {
    const e = err as UwError;
    const where = e.plugin && e.plugin !== 'core' ? ` [plugin ${e.plugin}${e.hook ? `, hook ${e.hook}` : ''}]` : '';
    return `uwcore: ${e.code}${where}: ${e.message}`;
  }
  const e = err as Error;
  return `uwcore: ${Codes.INTERNAL}: ${e?.stack ?? String(err)}`;
}
