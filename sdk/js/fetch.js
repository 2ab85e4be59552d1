// Redirects for `fetch()` in plugins built with `--http`.
//
// componentize-js's fetch hands a 3xx back as it came (wasi:http does not
// follow redirects). This wrapper follows them the way browsers do, up to
// MAX_REDIRECTS, each hop a new request that the worker checks against the
// manifest's `http` grant again: a redirect to an origin that is not granted
// fails like a request to it. `redirect: 'manual'` (or 'error') keeps the
// 3xx. A 303, or a 301/302 after a method other than GET and HEAD, goes on
// as a GET without a body, as the Fetch standard says.

export const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const rawFetch = globalThis.fetch;

if (typeof rawFetch === 'function') {
  globalThis.fetch = async function fetch(input, init = {}) {
    if (typeof input !== 'string' && !(input instanceof URL)) return rawFetch(input, init);
    const mode = init.redirect ?? 'follow';
    let url = String(input);
    let options = { ...init };
    delete options.redirect;
    for (let hop = 0; ; hop++) {
      const response = await rawFetch(url, options);
      const location = response.headers.get('location');
      if (mode !== 'follow' || !REDIRECTS.has(response.status) || !location) {
        if (mode === 'error' && REDIRECTS.has(response.status)) throw new TypeError(`redirect from ${url} refused (redirect: 'error')`);
        return response;
      }
      if (hop === MAX_REDIRECTS) throw new TypeError(`${url}: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url).href;
      const method = (options.method ?? 'GET').toUpperCase();
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method !== 'GET' && method !== 'HEAD')) {
        options = { ...options, method: 'GET' };
        delete options.body;
      }
    }
  };
}
