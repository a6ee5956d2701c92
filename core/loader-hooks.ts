// Module resolve hook (node:module register): `import 'uwcore'` and `import 'uwcore/sdk'` from an
// application anywhere on disk resolve to the running server, with or without a node_modules.
let map: Record<string, string> = {};

export async function initialize(data: { map: Record<string, string> }): Promise<void> {
  map = data.map;
}

export async function resolve(
  specifier: string,
  context: unknown,
  next: (s: string, c: unknown) => Promise<{ url: string }>,
): Promise<{ url: string; shortCircuit?: boolean }> {
  const url = map[specifier];
  if (url !== undefined) return { url, shortCircuit: true };
  return next(specifier, context);
}
