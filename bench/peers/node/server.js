// The careful Node peer bench/run.sh compares the handler with: the same ingest contract as the
// handler's `default` source, written the way a careful Node service would be. Not shipped.
//
// - node:cluster, one worker per core (NODE_PEER_WORKERS, default the CPU count);
// - the raw body is read and its `X-Hub-Signature-256` (`sha256=` + hex HMAC-SHA256 of the body
//   with WEBHOOK_SECRET) checked in constant time before anything else: 401 when it is wrong;
// - `X-GitHub-Delivery` is the delivery id: 400 when it is missing;
// - the body must be JSON (400 if not), and names the event type: `X-GitHub-Event`, else its
//   top-level `type` or `event` string (400 if none), as the handler's `default` source;
// - each worker holds one AMQP connection with one confirm channel, and publishes the body as
//   the handler does: persistent, `mandatory`, through a durable topic exchange
//   (NODE_PEER_QUEUE + `.x`, bound to the quorum queue NODE_PEER_QUEUE with `#`) with the
//   routing key `default.<type>`, the message id, timestamp, content type and the envelope's
//   four headers; 200 only after the broker's confirm, 500 when the publish fails or is not
//   confirmed within 5 s.
'use strict';

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const http = require('node:http');
const os = require('node:os');
const amqp = require('amqplib');

const addr = process.env.NODE_PEER_ADDR || '127.0.0.1:3180';
const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
const amqpUrl = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';
const queue = process.env.NODE_PEER_QUEUE || 'bench.node-peer';
const secret = process.env.WEBHOOK_SECRET || '';
const maxBody = 256 * 1024;
const workers = Number(process.env.NODE_PEER_WORKERS) || os.availableParallelism();

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i += 1) cluster.fork();
  cluster.on('exit', (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
    process.exit(1);
  });
} else {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}

function verified(body, header) {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const given = Buffer.from(header.slice(7), 'hex');
  const expected = crypto.createHmac('sha256', secret).update(body).digest();
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

function answer(res, status) {
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

async function main() {
  const connection = await amqp.connect(amqpUrl);
  connection.on('error', (error) => console.error('broker connection:', error.message));
  connection.on('close', () => process.exit(1));
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  const exchange = `${queue}.x`;
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.bindQueue(queue, exchange, '#');

  const publish = (body, id, type) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('confirm timeout')), 5000);
      const now = new Date();
      const options = {
        persistent: true,
        mandatory: true,
        messageId: id,
        contentType: 'application/json',
        timestamp: Math.floor(now.getTime() / 1000),
        headers: { source: 'default', 'event-type': type, 'received-at': now.toISOString(), 'retry-count': 0 },
      };
      channel.publish(exchange, `default.${type}`, body, options, (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    });

  const server = http.createServer((req, res) => {
    if (req.method !== 'POST') return answer(res, 404);
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > maxBody) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return answer(res, 413);
      const body = Buffer.concat(chunks, size);
      if (!verified(body, req.headers['x-hub-signature-256'])) return answer(res, 401);
      const id = req.headers['x-github-delivery'];
      if (typeof id !== 'string' || id.length === 0 || id.length > 200) return answer(res, 400);
      let parsed;
      try {
        parsed = JSON.parse(body);
      } catch {
        return answer(res, 400);
      }
      const named = (value) => (typeof value === 'string' && value.length > 0 ? value : null);
      const type =
        named(req.headers['x-github-event']) ?? (parsed && (named(parsed.type) ?? named(parsed.event)));
      if (!type) return answer(res, 400);
      publish(body, id, type).then(
        () => answer(res, 200),
        () => answer(res, 500),
      );
    });
  });
  server.keepAliveTimeout = 5000;
  server.listen(port, host);
}
