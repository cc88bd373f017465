import t from 'tap'
import pg from 'pg'
import { selectRows, type Fields } from '../src/kv/postgres/field-rows.js'
import { freshDatabase, requirePostgres } from './helpers/postgres.js'
import { PgProxy } from './helpers/pg-proxy.js'
import { until } from './helpers/until.js'

/**
 * selectRows, the read that snapshots and listings of files on PostgreSQL go through (pg's
 * Submittable, not pg's own query): rows and parameters of each kind come through; an error of
 * the server's in the middle of the rows, or a row the caller cannot make, rejects the read and
 * the connection reads on; a connection cut while the server answers rejects the read, which
 * gives its connection back, so the pool goes on through a new one.
 */

const fields = (f: Fields): Fields => f

if (await requirePostgres(t)) {
  t.test('selectRows: rows from their text fields; errors reject the read and leave the connection usable; a cut one leaves the pool', async (t) => {
    const url = await freshDatabase(t)
    const proxy = await PgProxy.start(t, url)
    const pool = new pg.Pool({ connectionString: proxy.url, max: 1 })
    t.teardown(() => pool.end())

    t.same(
      await selectRows(pool, 'SELECT n, $1::text || n AS name, NULL::text AS none, $2::bytea AS b FROM generate_series(1, $3::int) n', ['x', Buffer.from([1, 254]), 3], fields),
      [['1', 'x1', null, '\\x01fe'], ['2', 'x2', null, '\\x01fe'], ['3', 'x3', null, '\\x01fe']],
      'each row its fields as text, a NULL as null; text, bytes and numbers as parameters',
    )
    t.same(await selectRows(pool, 'SELECT n FROM generate_series(1, 0) n', [], fields), [], 'no rows')

    const client = await pool.connect()
    await t.rejects(selectRows(client, 'SELECT 1 / (3 - n) FROM generate_series(1, 5) n', [], fields), { code: '22012' }, "the server's error, raised after two rows")
    t.same(await selectRows(client, 'SELECT 1', [], fields), [['1']], 'the same connection reads on')
    const refuse = (f: Fields) => {
      if (f[0] === '2') throw new Error('a row it cannot make')
      return f
    }
    await t.rejects(selectRows(client, 'SELECT n FROM generate_series(1, 3) n', [], refuse), /a row it cannot make/)
    t.same(await selectRows(client, 'SELECT 2', [], fields), [['2']], 'and reads on after that too')
    client.release()

    // the connection cut while the server's answer is on its way
    proxy.hold()
    proxy.answered('cut_here') // counted from here, before the read is sent
    const cut = selectRows(pool, 'SELECT n AS cut_here FROM generate_series(1, 3) n', [], fields)
    await until(() => proxy.answered('cut_here') > 0, 'the server to answer the read')
    proxy.tcp.cut()
    await t.rejects(cut, 'the read fails')
    proxy.release()
    t.same(await selectRows(pool, 'SELECT 3', [], fields), [['3']], 'the pool reads through a new connection')
  })
}
