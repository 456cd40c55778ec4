/**
 * The consumer service: a handler per event type keeps a read model of the users. An event
 * about a user this service has never seen (its registration not here yet, or lost) cannot be
 * applied: it goes to `identity.user-events.dlq` with the reason `unknown_user`, and once the
 * cause is fixed, `npx conveyor dlq replay identity.user-events.dlq` sends it through again.
 */
import {
  bounded,
  type Codec,
  type ConveyorConsumer,
  createConsumer,
  type Message,
  NonRetryableError,
  type Routes,
  type Transport
} from '@conveyorjs/conveyor'
import { deadLetterTopic, topic, type UserEvents, type UserEventType } from './events.ts'

export interface User {
  user_id: string
  email: string
  name: string
  emailVerified: boolean
  signedIn: boolean
  logins: number
}

/** The read model: users by id. */
export type Users = Map<string, User>

type Handlers = { [K in UserEventType]: (message: Message<UserEvents[K]>, users: Users) => void }

function known(users: Users, id: string): User {
  const user = users.get(id)
  if (!user) throw new NonRetryableError(`user ${id} is not known here`, { reason: 'unknown_user' })
  return user
}

/** The handler registry: one function per event type. */
export const handlers: Handlers = {
  user_registered: ({ value }, users) => {
    users.set(value.user_id, {
      user_id: value.user_id,
      email: value.email,
      name: value.name,
      emailVerified: false,
      signedIn: false,
      logins: 0
    })
  },
  user_updated: ({ value }, users) => {
    const user = known(users, value.user_id)
    if (value.name != null) user.name = value.name
    if (value.email != null) {
      user.email = value.email
      user.emailVerified = false
    }
  },
  user_deleted: ({ value }, users) => {
    known(users, value.user_id)
    users.delete(value.user_id)
  },
  user_login: ({ value }, users) => {
    const user = known(users, value.user_id)
    user.signedIn = true
    user.logins += 1
  },
  user_logout: ({ value }, users) => {
    known(users, value.user_id).signedIn = false
  },
  user_password_changed: ({ value }, users) => {
    known(users, value.user_id)
  },
  user_email_verified: ({ value }, users) => {
    const user = known(users, value.user_id)
    if (user.email === value.email) user.emailVerified = true
  }
}

export function createUserEventsConsumer({
  transport,
  codec,
  groupId = 'identity-read-model',
  users = new Map()
}: {
  transport: Transport
  codec: Codec
  groupId?: string
  users?: Users
}): { consumer: ConveyorConsumer; users: Users } {
  // A transient failure is retried twice, then dead-lettered; unknown_user goes there at once.
  const retry = bounded({ retries: 2, initialDelay: 100, maxDelay: 1_000 })
  const routes: Routes = {}
  for (const type of Object.keys(handlers) as UserEventType[]) {
    const handle = handlers[type] as (message: Message<unknown>, users: Users) => void
    routes[type] = { handler: (message) => handle(message, users), retry, deadLetterTopic }
  }
  const consumer = createConsumer({ transport, groupId, topics: [topic], codec, ordering: 'key', routes })
  return { consumer, users }
}
