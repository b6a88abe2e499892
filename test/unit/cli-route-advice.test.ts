/**
 * What the CLI prints for an API problem: routes the API's detail advises are
 * named as the `checkpointd` commands that do the same; everything else, and
 * routes no command covers, stay as the API wrote them.
 */
import { expect } from 'chai';
import { ApiProblemError } from '../../src/cli/api-client.js';
import { inCommandTerms } from '../../src/cli/route-advice.js';

describe('CLI errors name commands, not API routes (route-advice)', function () {
  const cases: [string, string][] = [
    [
      'this node is not the primary; send the switchover to the primary (GET /api/admin/status names the lease holder)',
      'this node is not the primary; send the switchover to the primary (`checkpointd status` names the lease holder)',
    ],
    ['checkpoint 9 does not exist; GET /api/collection/checkpoint lists them', 'checkpoint 9 does not exist; `checkpointd checkpoint list` lists them'],
    ['checkpoint 9 does not cover space s-1; GET /api/space/s-1/checkpoint lists those that do', 'checkpoint 9 does not cover space s-1; `checkpointd checkpoint list --space s-1` lists those that do'],
    ['make a newer collection checkpoint first (POST /api/admin/checkpoint)', 'make a newer collection checkpoint first (`checkpointd checkpoint create`)'],
    ['or POST /api/space/s1/checkpoint now', 'or `checkpointd checkpoint create --space s1` now'],
    ['promotion is paused; POST /api/admin/failover/resume to turn it back on', 'promotion is paused; `checkpointd resume` to turn it back on'],
    ['POST /api/admin/failover/pause, then POST /api/admin/failover/switchover', '`checkpointd pause`, then `checkpointd switchover`'],
    ['checkpoint id "abc" must be a positive integer, as in /api/collection/checkpoint/3', 'checkpoint id "abc" must be a positive integer, as in `checkpointd checkpoint get 3`'],
    ['token "ci" has role member; this route needs collection-admin', 'token "ci" has role member; this command needs collection-admin'],
  ];
  for (const [api, cli] of cases) {
    it(`prints ${JSON.stringify(cli)}`, function () {
      expect(inCommandTerms(api)).to.equal(cli);
    });
  }

  it('leaves routes no command covers, other routes under the same prefix, and plain text as they are', function () {
    for (const detail of [
      'space s does not exist; GET /api/space lists the spaces',
      'load that exact version first (POST /api/template)',
      'GET /api/collection/checkpoint/3/download answers the file',
      'POST /api/admin/checkpointing is no route',
      'no standby is connected to take over; start one first',
    ]) {
      expect(inCommandTerms(detail)).to.equal(detail);
    }
  });

  it('changes only the message an ApiProblemError prints: its detail and problem stay the API\'s', function () {
    const detail = 'checkpoint 9 does not exist; GET /api/collection/checkpoint lists them';
    const problem = { status: 404, detail };
    const err = new ApiProblemError(404, detail, problem);
    expect(err.message).to.equal('checkpoint 9 does not exist; `checkpointd checkpoint list` lists them');
    expect(err.detail).to.equal(detail);
    expect(err.problem).to.equal(problem);
  });
});
