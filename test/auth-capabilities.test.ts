import t from 'tap'
import { HearthError } from '../src/errors.js'
import {
  covers,
  formatCapabilities,
  parseCapabilities,
  parseCapability,
  ROOT,
  type Action,
} from '../src/auth/capabilities.js'

t.test('parse and format', async (t) => {
  const table: [string, string][] = [
    ['', ''],
    ['/:rw', '/:rw'],
    ['/pub/app/:rw,/pub/x.txt:r', '/pub/app/:rw,/pub/x.txt:r'],
    ['/pub/x:wr', '/pub/x:rw'],
    ['/pub/x:rr', '/pub/x:r'],
    ['/pub/x:', '/pub/x:'],
    ['/pub/é/:w', '/pub/é/:w'],
    // upstream normalisation: same scope merges, covered entries drop
    ['/pub/a/:r,/pub/a/:w', '/pub/a/:rw'],
    ['/:rw,/pub/x:r', '/:rw'],
    ['/pub/x:r,/:rw', '/:rw'],
    ['/pub/a/:r,/pub/a/b:w', '/pub/a/:r,/pub/a/b:w'],
    ['/pub/a/:rw,/pub/a/b/c:w', '/pub/a/:rw'],
    ['/pub/a:r,/pub/a/:r', '/pub/a:r,/pub/a/:r'],
  ]
  for (const [input, output] of table) {
    t.equal(formatCapabilities(parseCapabilities(input)), output, JSON.stringify(input))
  }
  t.same(parseCapability('/pub/app/:rw'), { scope: '/pub/app/', actions: 'rw' })
  t.same(ROOT, { scope: '/', actions: 'rw' })
})

t.test('malformed lists are refused with a reason', async (t) => {
  const table: [string, RegExp][] = [
    ['pub/x:r', /scope must start with \//],
    [' /pub/x:r', /scope must start with \//],
    ['/pub/x', /expected <scope>:<actions>/],
    ['/a:b:r', /expected <scope>:<actions>/],
    ['/pub/x:rx', /actions are r and w/],
    ['/pub/x:R', /actions are r and w/],
    ['/pub/x:r,', /empty entry/],
    [',/pub/x:r', /empty entry/],
    ['/pub/x:r,,/pub/y:w', /empty entry/],
  ]
  for (const [input, reason] of table) {
    t.throws(() => parseCapabilities(input), reason, JSON.stringify(input))
    try {
      parseCapabilities(input)
    } catch (err) {
      t.ok(err instanceof HearthError && err.status === 400, 'a 400')
    }
  }
})

t.test('covers', async (t) => {
  const table: [string, string, Action, boolean][] = [
    ['/:rw', '/pub/anything/at/all', 'w', true],
    ['/:rw', '/priv/x', 'r', true],
    ['/:r', '/pub/x', 'w', false],
    ['/pub/a/:rw', '/pub/a/x', 'w', true],
    ['/pub/a/:rw', '/pub/a/deep/er/x', 'r', true],
    ['/pub/a/:rw', '/pub/ab', 'w', false],
    ['/pub/a/:rw', '/pub/ab/x', 'w', false],
    ['/pub/a/:rw', '/pub/a', 'w', false],
    ['/pub/a:rw', '/pub/a', 'w', true],
    ['/pub/a:rw', '/pub/a/x', 'w', false],
    ['/pub/a:rw', '/pub/ab', 'w', false],
    ['/pub/x.txt:r', '/pub/x.txt', 'r', true],
    ['/pub/x.txt:r', '/pub/x.txt', 'w', false],
    ['/pub/app/:rw,/pub/x.txt:r', '/pub/x.txt', 'r', true],
    ['/pub/app/:r,/pub/app/w/:w', '/pub/app/w/f', 'w', true],
    ['/pub/app/:r,/pub/app/w/:w', '/pub/app/f', 'w', false],
    ['/pub/x:', '/pub/x', 'r', false],
    ['', '/pub/x', 'r', false],
  ]
  for (const [caps, path, action, expected] of table) {
    t.equal(covers(parseCapabilities(caps), path, action), expected, `${caps} ${action} ${path}`)
  }
})
