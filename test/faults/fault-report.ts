import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** One line of the figures table the fault suite ends with. */
export interface FaultRow {
  fault: string;
  requestsSent: number;
  /** Responses whose status or body differ from the same request with telemetry healthy. Must be 0. */
  answeredWrongly: number;
  eventsExpected?: number;
  eventsDelivered?: number;
  /** Heap growth in MiB (after a forced GC), where the scenario measures it. */
  heapGrowthMiB?: number;
  /** Resident set growth in MiB (after a forced GC), where the scenario measures it. */
  rssGrowthMiB?: number;
  note?: string;
}

export const FAULT_REPORT_DIR = resolve('.tmp/fault-report');

/**
 * Collects the rows of one test file and writes them where the table reporter
 * (test/support/fault-table-reporter.cjs) reads them once every file has run.
 */
export class FaultReport {
  private readonly rows: FaultRow[] = [];

  constructor(private readonly file: string) {}

  add(row: FaultRow): void {
    this.rows.push(row);
    mkdirSync(FAULT_REPORT_DIR, { recursive: true });
    writeFileSync(resolve(FAULT_REPORT_DIR, `${this.file}.json`), JSON.stringify(this.rows, null, 1));
  }
}
