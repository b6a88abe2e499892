/**
 * API problem details advise HTTP clients in routes ("GET
 * /api/collection/checkpoint lists them"); an operator at the command line is
 * told the `checkpointd` command that does the same instead. Only what the
 * CLI prints changes: the API's answer, and `--json` output, keep the route.
 * A route no command covers (loading a template, creating a space) stays as
 * it is.
 */

/** Each route the API's details name as advice, and the command that does the same. */
const Advice: readonly [RegExp, string][] = [
  [/\bGET \/api\/admin\/status\b/g, '`checkpointd status`'],
  [/\bGET \/api\/collection\/checkpoint(?![/\w])/g, '`checkpointd checkpoint list`'],
  [/\bGET \/api\/space\/([^\s/]+)\/checkpoint(?![/\w])/g, '`checkpointd checkpoint list --space $1`'],
  [/\bPOST \/api\/admin\/checkpoint(?![/\w])/g, '`checkpointd checkpoint create`'],
  [/\bPOST \/api\/space\/([^\s/]+)\/checkpoint(?![/\w])/g, '`checkpointd checkpoint create --space $1`'],
  [/\bPOST \/api\/admin\/failover\/(switchover|pause|resume)\b/g, '`checkpointd $1`'],
  [/\bas in \/api\/collection\/checkpoint\/(\d+)\b/g, 'as in `checkpointd checkpoint get $1`'],
  [/\bthis route needs\b/g, 'this command needs'],
];

/** `detail` with each route it advises replaced by the matching `checkpointd` command. */
export function inCommandTerms(detail: string): string {
  return Advice.reduce((text, [route, command]) => text.replace(route, command), detail);
}
