/**
 * The compliance system's events. They name their type in `eventType` (not Conveyor's default
 * `message_type`), so producers are created with `typeField: 'eventType'` and consumers with
 * `typeFrom: { field: 'eventType' }`. Each topic has its own key, and so its own order:
 *
 * - `compliance.agents.events.v1`, keyed by agent id: an agent's heartbeats and task
 *   completions stay in order;
 * - `compliance.reports.submitted.v1`, keyed by organisation: one organisation's reports in order;
 * - `compliance.audit.logged.v1`, keyed by the hour (`2026-12-02T15`): one hour's audit trail
 *   on one partition, in order.
 */
import { type ConveyorProducer, createProducer, type Transport } from '@conveyorjs/conveyor'

export const topics = {
  agents: 'compliance.agents.events.v1',
  reports: 'compliance.reports.submitted.v1',
  audit: 'compliance.audit.logged.v1'
} as const

export interface AgentEvents {
  agent_heartbeat: { agentId: string; status: 'healthy' | 'degraded'; at: string }
  task_completed: { agentId: string; taskId: string; outcome: 'passed' | 'failed'; at: string }
}
export interface ReportEvents {
  compliance_report_submitted: { organisationId: string; reportId: string; framework: string; score: number }
}
export interface AuditEvents {
  audit_logged: { actor: string; action: string; at: string }
}

/** The key of an audit event: the hour it happened in (UTC), e.g. `2026-12-02T15`. */
export function auditHour(at: string): string {
  return new Date(at).toISOString().slice(0, 13)
}

export function agentProducer(transport: Transport): ConveyorProducer<AgentEvents> {
  return createProducer<AgentEvents>({
    transport,
    topic: topics.agents,
    typeField: 'eventType',
    source: 'urn:agents'
  })
}

export function reportProducer(transport: Transport): ConveyorProducer<ReportEvents> {
  return createProducer<ReportEvents>({
    transport,
    topic: topics.reports,
    typeField: 'eventType',
    source: 'urn:reports'
  })
}

export function auditProducer(transport: Transport): ConveyorProducer<AuditEvents> {
  return createProducer<AuditEvents>({
    transport,
    topic: topics.audit,
    typeField: 'eventType',
    source: 'urn:audit'
  })
}
