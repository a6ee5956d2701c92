// Content types by file extension: a built-in table of the types the web actually serves, completed by
// /etc/mime.types when it exists, overridden by every --mimefile (later files win).
import fs from 'node:fs';

/** The built-in table (authoritative over /etc/mime.types, so that answers do not depend on the host). */
const BUILTIN: Record<string, string> = {
  html: 'text/html', htm: 'text/html', shtml: 'text/html', xhtml: 'application/xhtml+xml',
  css: 'text/css', js: 'text/javascript', mjs: 'text/javascript', cjs: 'text/javascript',
  json: 'application/json', map: 'application/json', jsonld: 'application/ld+json', webmanifest: 'application/manifest+json',
  xml: 'application/xml', xsl: 'application/xml', rss: 'application/rss+xml', atom: 'application/atom+xml',
  txt: 'text/plain', text: 'text/plain', log: 'text/plain', md: 'text/markdown', csv: 'text/csv', tsv: 'text/tab-separated-values',
  ics: 'text/calendar', vtt: 'text/vtt', yaml: 'application/yaml', yml: 'application/yaml', toml: 'application/toml',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', jpe: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  avif: 'image/avif', svg: 'image/svg+xml', svgz: 'image/svg+xml', ico: 'image/x-icon', bmp: 'image/bmp',
  tif: 'image/tiff', tiff: 'image/tiff', apng: 'image/apng', jxl: 'image/jxl', heic: 'image/heic',
  woff: 'font/woff', woff2: 'font/woff2', ttf: 'font/ttf', otf: 'font/otf', eot: 'application/vnd.ms-fontobject',
  mp4: 'video/mp4', m4v: 'video/mp4', webm: 'video/webm', ogv: 'video/ogg', mov: 'video/quicktime', avi: 'video/x-msvideo',
  mkv: 'video/x-matroska', mpeg: 'video/mpeg', mpg: 'video/mpeg', ts: 'video/mp2t', m3u8: 'application/vnd.apple.mpegurl',
  mpd: 'application/dash+xml', mp3: 'audio/mpeg', m4a: 'audio/mp4', aac: 'audio/aac', oga: 'audio/ogg', ogg: 'audio/ogg',
  opus: 'audio/ogg', wav: 'audio/wav', flac: 'audio/flac', weba: 'audio/webm', mid: 'audio/midi', midi: 'audio/midi',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tgz: 'application/gzip', br: 'application/x-brotli',
  bz2: 'application/x-bzip2', xz: 'application/x-xz', zst: 'application/zstd', tar: 'application/x-tar', '7z': 'application/x-7z-compressed',
  rar: 'application/vnd.rar', wasm: 'application/wasm', bin: 'application/octet-stream', exe: 'application/octet-stream',
  dmg: 'application/octet-stream', iso: 'application/octet-stream', deb: 'application/vnd.debian.binary-package',
  rpm: 'application/x-rpm', jar: 'application/java-archive', apk: 'application/vnd.android.package-archive',
  doc: 'application/msword', docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint', pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  epub: 'application/epub+zip', rtf: 'application/rtf', swf: 'application/x-shockwave-flash', sh: 'application/x-sh',
};

export const DEFAULT_TYPE = 'application/octet-stream';

/** Parse a mime.types file: `type ext ext …` per line, `#` comments. Later entries override earlier ones. */
export function parseMimeTypes(text: string, into: Map<string, string>, overwrite: boolean): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l[0] === '#') continue;
    const parts = l.split(/\s+/);
    const type = parts[0]!;
    if (!type.includes('/')) continue;
    for (let i = 1; i < parts.length; i++) {
      const ext = parts[i]!.toLowerCase().replace(/^\./, '');
      if (ext === '' || ext.startsWith('#')) break;
      if (overwrite || !into.has(ext)) { into.set(ext, type); n++; }
    }
  }
  return n;
}

/**
 * Build the extension → type map. `files` are --mimefile values (they must exist: a typo is a config
 * error); /etc/mime.types is read only when no --mimefile is given and it exists.
 */
export function buildMimeTable(files: readonly string[], systemFile = '/etc/mime.types'): Map<string, string> {
  const table = new Map<string, string>(Object.entries(BUILTIN));
  if (files.length === 0) {
    try { parseMimeTypes(fs.readFileSync(systemFile, 'utf8'), table, false); } catch { /* absent: built-in table only */ }
  }
  for (const f of files) parseMimeTypes(fs.readFileSync(f, 'utf8'), table, true);
  return table;
}

/** The type for a file name (extension after the last dot of the last segment, case-insensitive). */
export function lookupType(table: Map<string, string>, file: string): string {
  const slash = file.lastIndexOf('/');
  const dot = file.lastIndexOf('.');
  if (dot <= slash + 1) return DEFAULT_TYPE; // no extension, or a dotfile such as `.htaccess`
  const ext = file.slice(dot + 1);
  return table.get(ext) ?? table.get(ext.toLowerCase()) ?? DEFAULT_TYPE;
}
