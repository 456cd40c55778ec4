/**
 * Where a benchmark's Conveyor contender loads Conveyor from. Scenarios import the runtime
 * modules they measure (the consumer, the transport, the producer …) through `runtime(path)`
 * rather than statically, so that one measurement function can run on two source trees:
 *
 *   const { createConsumer } = await runtime('consumer/consumer.ts')   // src/consumer/consumer.ts
 *
 * By default that is this checkout's `src/` (the working tree, edits included). With a
 * baseline (`BENCH_BASELINE=<git ref>`, see bench/run.ts) the harness also measures each of a
 * scenario's `runtimeContenders` as `<name>@base`: the worker (bench/worker.ts) calls
 * `useBaselineRuntime()` and then runs `<name>`'s measurement unchanged, whose `runtime()`
 * calls now load the baseline commit's `src/` tree, extracted by the harness under
 * bench/.baseline/<sha>/src (inside the repository, so bare imports such as
 * `@platformatic/kafka` resolve to this checkout's node_modules). Types always come from
 * this checkout's `src/`.
 *
 * Only what the measured runtime uses goes through here; a scenario's setup and its checks
 * (topics, committed offsets, the other contenders) keep their static imports.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The runtime modules scenarios load, by path under `src/`. */
interface RuntimeModules {
  'consumer/consumer.ts': typeof import('../src/consumer/consumer.ts')
  'kafka/transport.ts': typeof import('../src/kafka/transport.ts')
  'producer/producer.ts': typeof import('../src/producer/producer.ts')
  'replicator/replicator.ts': typeof import('../src/replicator/replicator.ts')
  'replicator/postgres.ts': typeof import('../src/replicator/postgres.ts')
  'schema/avro-codec.ts': typeof import('../src/schema/avro-codec.ts')
  'schema/registry-client.ts': typeof import('../src/schema/registry-client.ts')
}

/** A contender named `<name>@base` is `<name>` measured on the baseline's runtime. */
export const baselineSuffix = '@base'

/** The harness passes the baseline's extracted `src/` directory to workers in this variable. */
export const baselineVariable = 'CONVEYOR_BENCH_BASELINE_SRC'

let root = new URL('../src/', import.meta.url)
let loads = 0

/** Loads `src/<path>` from the runtime this process measures. */
export function runtime<Path extends keyof RuntimeModules>(path: Path): Promise<RuntimeModules[Path]> {
  loads += 1
  return import(new URL(path, root).href)
}

/** From now on `runtime()` loads from the baseline tree (called by the worker for `<name>@base`). */
export function useBaselineRuntime(): void {
  const directory = process.env[baselineVariable]
  if (!directory)
    throw new Error(`a ${baselineSuffix} contender needs ${baselineVariable} (set by bench/run.ts)`)
  root = pathToFileURL(`${directory}/`)
}

/** How many modules were loaded through `runtime()`: 0 means a contender never used it. */
export function runtimeLoads(): number {
  return loads
}

/**
 * Resolves `ref` and extracts its `src/` into bench/.baseline/<sha>/src (once per commit);
 * used by the benchmarks' and the chaos run's `--baseline`. Exits 2 when `ref` is no commit.
 */
export function extractBaseline(
  ref: string,
  log: (line: string) => void
): { ref: string; sha: string; src: string } {
  const git = (...gitArgs: string[]) =>
    execFileSync('git', gitArgs, {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8'
    }).trim()
  let sha: string
  try {
    sha = git('rev-parse', '--verify', '--quiet', `${ref}^{commit}`)
  } catch {
    log(`baseline ${ref}: not a commit in this repository`)
    process.exit(2)
  }
  const directory = fileURLToPath(new URL(`./.baseline/${sha}/`, import.meta.url))
  const complete = join(directory, 'complete')
  if (!existsSync(complete)) {
    log(`extracting src/ of ${ref} (${sha}) into ${directory}`)
    rmSync(directory, { recursive: true, force: true })
    mkdirSync(directory, { recursive: true })
    git('archive', `--output=${join(directory, 'src.tar')}`, sha, 'src')
    execFileSync('tar', ['-x', '-f', 'src.tar'], { cwd: directory })
    rmSync(join(directory, 'src.tar'))
    writeFileSync(complete, `${ref}\n`)
  }
  return { ref, sha, src: join(directory, 'src') }
}
