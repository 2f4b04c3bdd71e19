// Prints the fault suite's figures as one table once every file has run (rows come from test/faults/fault-report.ts).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS file: Jest loads its reporters with require()
const { readdirSync, readFileSync, rmSync, mkdirSync } = require('node:fs');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
const { resolve } = require('node:path');

const dir = resolve('.tmp/fault-report');

class FaultTableReporter {
  onRunStart() {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  }

  onRunComplete() {
    let rows = [];
    for (const file of readdirSync(dir).sort()) rows = rows.concat(JSON.parse(readFileSync(resolve(dir, file), 'utf8')));
    if (rows.length === 0) return;
    const header = ['fault', 'requests sent', 'answered wrongly', 'events expected', 'events delivered', 'heap growth', 'RSS growth'];
    const cells = rows.map((r) => [
      r.fault,
      String(r.requestsSent),
      String(r.answeredWrongly),
      r.eventsExpected === undefined ? '—' : String(r.eventsExpected),
      r.eventsDelivered === undefined ? '—' : String(r.eventsDelivered),
      r.heapGrowthMiB === undefined ? '—' : `${r.heapGrowthMiB.toFixed(1)} MiB`,
      r.rssGrowthMiB === undefined ? '—' : `${r.rssGrowthMiB.toFixed(1)} MiB`,
    ]);
    const line = (values) => `| ${values.join(' | ')} |`;
    const out = [line(header), line(header.map(() => '---')), ...cells.map(line)];
    const total = rows.reduce((sum, r) => sum + r.requestsSent, 0);
    const wrong = rows.reduce((sum, r) => sum + r.answeredWrongly, 0);
    process.stdout.write(
      `\nFault suite figures (${rows.length} faults, ${total} requests, ${wrong} answered wrongly):\n\n${out.join('\n')}\n\n`,
    );
    for (const r of rows.filter((r) => r.note)) process.stdout.write(`- ${r.fault}: ${r.note}\n`);
  }
}
module.exports = FaultTableReporter;
