// A third-party plugin with a body transformation (the shape of gzip or cache-store): upper-cases the body.
export default {
  name: 'upper',
  version: '1.0.0',
  sdk: '^1.1.0',
  setup(api) {
    const t = {
      name: 'upper',
      headers(_ctx, h) { return h.filter(([k]) => k.toLowerCase() !== 'content-length'); },
      chunk(_ctx, b) { return Buffer.from(b.toString('latin1').toUpperCase(), 'latin1'); },
      final() { return Buffer.from('-- END\n'); },
    };
    api.routerActions.register('upper', () => (ctx) => { ctx.addTransform(t); return 'next'; });
  },
};
