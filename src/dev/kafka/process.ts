import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** True when a process with this pid exists (and is not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    // A child that exited but was not reaped still answers kill(0); /proc tells.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}

/**
 * True when `pid` is alive and its command line contains `marker`. Guards against
 * signalling an unrelated process that reused a pid recorded by an earlier run.
 */
export function isOurProcess(pid: number, marker: string): boolean {
  if (!isAlive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)
  } catch {
    // No /proc (not Linux): trust the pid file.
    return true
  }
}

/** Sends SIGTERM, waits up to `graceMs` for the exit, then SIGKILL. Resolves once it is gone. */
export async function terminate(pid: number, graceMs: number): Promise<'terminated' | 'killed' | 'absent'> {
  if (!isAlive(pid)) return 'absent'
  signal(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return 'terminated'
    await sleep(100)
  }
  signal(pid, 'SIGKILL')
  while (isAlive(pid)) await sleep(50)
  return 'killed'
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
  }
}
