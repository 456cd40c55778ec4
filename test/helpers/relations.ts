/** Relations events for the replicator's tests: relationships and the Debezium envelope around them. */

/** A typed object in the `rbac` namespace. */
export const relationObject = (name: string, id: string) => ({ type: { namespace: 'rbac', name }, id })

/** `group:<group>#member@principal:<user>`. */
export const member = (group: string, user: string) => ({
  resource: relationObject('group', group),
  relation: 'member',
  subject: { subject: relationObject('principal', user) }
})

/** The JSON converter's envelope as the Outbox Event Router writes it: the payload as a JSON string. */
export const envelope = (payload: unknown) =>
  JSON.stringify({
    schema: { type: 'string', name: 'io.debezium.data.Json' },
    payload: JSON.stringify(payload)
  })
