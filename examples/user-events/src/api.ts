/**
 * The identity service's HTTP API (Fastify). Account changes are published synchronously:
 * the answer comes once the broker has acknowledged the event (201/200 with its partition
 * and offset), and a failed publish is a 503 — the client knows the change was not announced.
 * Sign-ins and sign-outs are published in the background: 202 at once, the event follows
 * (a full queue is a 503; failures are reported, never dropped silently).
 */
import { randomUUID } from 'node:crypto'
import type { ConveyorProducer, RecordPosition } from '@conveyorjs/conveyor'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import type { BackgroundPublisher } from './background.ts'
import type { UserEvents, UserEventType } from './events.ts'

export interface ApiOptions {
  producer: ConveyorProducer<UserEvents>
  background: BackgroundPublisher
}

export function buildApi({ producer, background }: ApiOptions): FastifyInstance {
  const app = Fastify({ logger: false })

  /** Publishes and answers with where the event was written, or 503 when it was not. */
  async function publish<K extends UserEventType>(
    reply: FastifyReply,
    status: number,
    type: K,
    payload: UserEvents[K]
  ) {
    let position: RecordPosition
    try {
      position = await producer.send(type, payload, { key: payload.user_id })
    } catch (error) {
      return reply
        .code(503)
        .send({ error: `the ${type} event was not published: ${(error as Error).message}` })
    }
    return reply.code(status).send({
      user_id: payload.user_id,
      event: type,
      partition: position.partition,
      offset: String(position.offset)
    })
  }

  function inBackground<K extends UserEventType>(reply: FastifyReply, type: K, payload: UserEvents[K]) {
    if (!background.enqueue(type, payload, payload.user_id))
      return reply.code(503).send({ error: 'too many events waiting to be published: try again' })
    return reply.code(202).send({ user_id: payload.user_id, event: type, queued: true })
  }

  const user = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1 } } }

  app.post<{ Body: { user_id?: string; email: string; name: string } }>(
    '/users',
    {
      schema: {
        body: {
          type: 'object',
          required: ['email', 'name'],
          properties: {
            user_id: { type: 'string', minLength: 1 },
            email: { type: 'string' },
            name: { type: 'string' }
          }
        }
      }
    },
    (request, reply) =>
      publish(reply, 201, 'user_registered', {
        user_id: request.body.user_id ?? randomUUID(),
        email: request.body.email,
        name: request.body.name,
        at: Date.now()
      })
  )
  app.patch<{ Params: { id: string }; Body: { name?: string; email?: string } }>(
    '/users/:id',
    { schema: { params: user } },
    (request, reply) =>
      publish(reply, 200, 'user_updated', {
        user_id: request.params.id,
        name: request.body?.name ?? null,
        email: request.body?.email ?? null,
        at: Date.now()
      })
  )
  app.delete<{ Params: { id: string } }>('/users/:id', { schema: { params: user } }, (request, reply) =>
    publish(reply, 200, 'user_deleted', { user_id: request.params.id, reason: null, at: Date.now() })
  )
  app.post<{ Params: { id: string } }>(
    '/users/:id/password',
    { schema: { params: user } },
    (request, reply) =>
      publish(reply, 200, 'user_password_changed', { user_id: request.params.id, at: Date.now() })
  )
  app.post<{ Params: { id: string }; Body: { email: string } }>(
    '/users/:id/email-verification',
    { schema: { params: user } },
    (request, reply) =>
      publish(reply, 200, 'user_email_verified', {
        user_id: request.params.id,
        email: request.body.email,
        at: Date.now()
      })
  )
  app.post<{ Params: { id: string } }>('/users/:id/login', { schema: { params: user } }, (request, reply) =>
    inBackground(reply, 'user_login', {
      user_id: request.params.id,
      ip: request.ip,
      user_agent: request.headers['user-agent'] ?? null,
      at: Date.now()
    })
  )
  app.post<{ Params: { id: string } }>('/users/:id/logout', { schema: { params: user } }, (request, reply) =>
    inBackground(reply, 'user_logout', { user_id: request.params.id, at: Date.now() })
  )
  app.get('/health', () => ({ pending: background.pending, ...background.counts }))
  return app
}
