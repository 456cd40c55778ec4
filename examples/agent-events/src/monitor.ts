/**
 * The agent monitor: consumes the agents' events, dispatching by `eventType` — heartbeats
 * update when each agent was last seen, task completions are recorded (through
 * `recordTask`, e.g. a write to the compliance database). Commits are Conveyor's manual
 * ones: an offset is committed only once its event's handler has finished, so a crash
 * or a rebalance never skips an event whose task was not recorded.
 */
import { type ConveyorConsumer, createConsumer, type Message, type Transport } from '@conveyorjs/conveyor'
import { type AgentEvents, topics } from './events.ts'

export interface AgentState {
  /** When each agent was last seen, and how. */
  agents: Map<string, { status: string; lastSeen: string }>
  /** Tasks recorded, by outcome. */
  tasks: { passed: number; failed: number }
}

export function createAgentMonitor({
  transport,
  groupId = 'compliance-agent-monitor',
  recordTask = async () => {}
}: {
  transport: Transport
  groupId?: string
  recordTask?: (task: AgentEvents['task_completed']) => Promise<void>
}): { consumer: ConveyorConsumer; state: AgentState } {
  const state: AgentState = { agents: new Map(), tasks: { passed: 0, failed: 0 } }
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topics.agents],
    typeFrom: { field: 'eventType' },
    ordering: 'key',
    routes: {
      agent_heartbeat: {
        handler: (message: Message<AgentEvents['agent_heartbeat']>) => {
          state.agents.set(message.value.agentId, {
            status: message.value.status,
            lastSeen: message.value.at
          })
        }
      },
      task_completed: {
        handler: async (message: Message<AgentEvents['task_completed']>) => {
          await recordTask(message.value)
          state.tasks[message.value.outcome] += 1
        }
      }
    }
  })
  return { consumer, state }
}
