/**
 * JSON schemas shared by the admin routes: fastify validates params and bodies with them, and
 * @fastify/swagger turns the same schemas into the OpenAPI document at GET /v1/admin/openapi.json.
 */
export const keyringParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 63, description: 'keyring name from the broker config' } },
} as const;

export const providerParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 63, description: 'provider id from the broker config' } },
} as const;

/** Route options with an OpenAPI summary and, when given, the params and body schemas. */
export function schemaOf(summary: string, params?: object, body?: object): { schema: Record<string, unknown> } {
  return { schema: { summary, tags: ['admin'], ...(params ? { params } : {}), ...(body ? { body } : {}) } };
}
