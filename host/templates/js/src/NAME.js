// `{{name}}`: a Chard plugin. Every exported function is a task, served as
// `{{name}}.<function>`; `task(fn, { doc })` only adds metadata. Arguments and
// return values are JSON; a thrown error fails the task, and a Celery client
// re-raises it with the error's name as the exception type.
import { task } from 'chard';

export const add = task((x, y) => x + y, { doc: 'Add two numbers.' });

export const hello = task((name) => `Hello, ${name}!`, { doc: 'Greet someone by name.' });
