// `jsmath`: the `math` plugin's tasks, written in JavaScript. Every exported
// function is a task; `task(fn, { doc, ... })` only adds metadata.
import { task } from 'chard';

export const add = task((x, y) => x + y, { doc: 'Add two numbers.' });

export const mul = task((x, y) => x * y, { doc: 'Multiply two numbers.' });

export const xsum = task(
  (numbers) => {
    if (!Array.isArray(numbers)) throw new TypeError('xsum: numbers must be a list');
    return numbers.reduce((total, n) => {
      if (typeof n !== 'number') throw new TypeError(`xsum: not a number: ${JSON.stringify(n)}`);
      return total + n;
    }, 0);
  },
  { doc: 'Sum a list of numbers.' },
);

/** Fail with `message` (a plain `Error`). */
export function fail(message) {
  throw new Error(message);
}
