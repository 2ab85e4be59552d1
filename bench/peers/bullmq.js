// BullMQ side of `make bench-peers` (driven by bench/peers.py).
//
//   node bullmq.js load <port> <jobs>      queue <jobs> `add` jobs, then exit
//   node bullmq.js work <port> <concurrency>  process them until SIGTERM
//
// The job is the same as Chard's `math.add`: return x + y. BullMQ keeps the
// return value in the job's hash and the job id in the `completed` set by
// default, which is its equivalent of storing a result; peers.py counts that
// set to time the drain.
const { Queue, Worker } = require("bullmq");

const QUEUE = "bench";
const [mode, port, count] = process.argv.slice(2);
const connection = { host: "127.0.0.1", port: Number(port) };

async function load(jobs) {
  const queue = new Queue(QUEUE, { connection });
  for (let start = 0; start < jobs; start += 1000) {
    const batch = [];
    for (let i = start; i < Math.min(jobs, start + 1000); i++) {
      batch.push({ name: "add", data: { x: i, y: i } });
    }
    await queue.addBulk(batch);
  }
  await queue.close();
}

function work(concurrency) {
  const worker = new Worker(QUEUE, async (job) => job.data.x + job.data.y, { connection, concurrency });
  const stop = () => worker.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (mode === "load") {
  load(Number(count)).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (mode === "work") {
  work(Number(count));
} else {
  console.error("usage: node bullmq.js load <port> <jobs> | work <port> <concurrency>");
  process.exit(2);
}
