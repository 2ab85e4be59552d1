// `jshttp`: outbound HTTP from a JavaScript task with fetch() (the same
// tasks as `pyhttp` and `chttp`). Built with `--http` (see build.sh); origins
// granted under `http` in `jshttp.toml`.

export const add = (x, y) => x + y;

/** GET `url` and return its status and JSON body. */
export async function get_json(url) {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

/** POST `payload` as JSON to `url`; return the status and JSON answer. */
export async function post_json(url, payload) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  return { status: response.status, body: await response.json() };
}
