/** What `stopOnSignals` stops: a consumer, or any object with `stop()` (e.g. one that closes a transport). */
export interface Stoppable {
  /** Stops the component; resolves once it has stopped. */
  stop(): Promise<void>
}

/**
 * Graceful shutdown on SIGTERM / SIGINT: the first signal stops the given components one
 * after the other, in order (a consumer drains and commits before its transport closes),
 * and lets the process exit 0; a second signal while stopping exits at once with code 130
 * (SIGINT) or 143 (SIGTERM). A component that fails to stop makes the exit code 1.
 * `signals` replaces the signals listened to; `onSignal` is called with each one received.
 * Returns a function that removes the signal handlers.
 */
export function stopOnSignals(
  components: Stoppable[],
  {
    signals = ['SIGTERM', 'SIGINT'] as NodeJS.Signals[],
    onSignal
  }: { signals?: NodeJS.Signals[]; onSignal?: (signal: NodeJS.Signals) => void } = {}
): () => void {
  let stopping = false
  const handler = (signal: NodeJS.Signals) => {
    onSignal?.(signal)
    if (stopping) process.exit(signal === 'SIGINT' ? 130 : 143)
    stopping = true
    void (async () => {
      for (const component of components) {
        try {
          await component.stop()
        } catch (error) {
          process.stderr.write(`shutdown: ${(error as Error).message}\n`)
          process.exitCode = 1
        }
      }
      for (const s of signals) process.off(s, handler)
    })()
  }
  for (const s of signals) process.on(s, handler)
  return () => {
    for (const s of signals) process.off(s, handler)
  }
}
