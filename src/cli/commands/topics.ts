import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Admin } from '@platformatic/kafka'
import { applyTopics, describeChange, loadTopicsFile, planTopics } from '../../admin/topics.ts'
import { clientOptions } from '../../kafka/connection.ts'
import type { Command } from '../command.ts'
import { connect, connectionHelp, connectionOptions, environmentHelp, exitCodesHelp } from '../options.ts'

const usage = `Usage: conveyor topics plan|apply <file> [options]

Declarative topics. <file> (YAML or JSON) maps topic names to their settings:

  topics:
    observation:
      partitions: 6
      replicationFactor: 3
      retention: 7d            # or milliseconds, -1 for ever
      cleanupPolicy: delete    # delete | compact | "compact,delete"
      config: { min.insync.replicas: 2 }

  plan   shows what apply would change (+ create, ~ change, ! impossible)
  apply  makes the changes, then checks that nothing is left to change

Topics not in the file are left alone. \`plan\` exits 1 when a change is impossible.

Options:
${connectionHelp}
  --json                  output as JSON

${environmentHelp}

${exitCodesHelp}`

export const topicsCommand: Command = {
  name: 'topics',
  summary: 'plan and apply declarative topic settings',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...connectionOptions,
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const [action, file] = positionals
    if (values.help || !file || (action !== 'plan' && action !== 'apply')) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const declared = loadTopicsFile(file)
    const admin = new Admin(clientOptions(await connect(values, 'topics')))
    try {
      const changes = await planTopics(admin, declared)
      if (action === 'plan') {
        if (values.json) io.out(JSON.stringify({ changes }, null, 2))
        else
          io.out(
            changes.length === 0
              ? 'no changes: the cluster matches the file'
              : changes.map(describeChange).join('\n')
          )
        return changes.some((c) => c.action === 'impossible') ? 1 : 0
      }
      for (const change of changes) io.err(describeChange(change))
      await applyTopics(admin, changes)
      // The brokers apply metadata and configuration asynchronously: wait for them to show it.
      let left = await planTopics(admin, declared)
      for (let waited = 0; left.length > 0 && waited < 20_000; waited += 250) {
        await sleep(250)
        left = await planTopics(admin, declared)
      }
      if (left.length > 0) {
        io.err(`still different after apply:\n${left.map(describeChange).join('\n')}`)
        return 1
      }
      io.out(
        values.json
          ? JSON.stringify({ applied: changes.length })
          : `applied ${changes.length} change(s); the cluster matches the file`
      )
      return 0
    } finally {
      await admin.close()
    }
  }
}
