import { describe, expect, it } from 'vitest'
import { filterCovers, mayRead, maySubscribe, mayWrite, rulesFor, type Acl } from '../../src/auth/acl.js'
import { parseAclFile, parseRule } from '../../src/auth/acl-parse.js'

function acl (text: string, file = 'acl.conf'): Acl {
  const r = parseAclFile(text, file)
  if (!r.ok) throw new Error(r.problems.join('; '))
  return r.acl
}

describe('topic filter coverage', () => {
  it.each([
    ['#', 'a/b', true],
    ['#', '#', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/#', true],
    ['a/#', 'a/+', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b/c', false],
    ['a/b', 'a/+', false],
    ['a/+/#', 'a/#', false],
    ['+/+', 'a/', true],
    ['#', '$SYS/#', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/broker/#', true],
    ['a/b/c', 'a/b', false]
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(filterCovers(outer, inner)).toBe(expected)
  })
})

describe('ACL rules', () => {
  it('parses every access form, Mosquitto style', () => {
    expect(parseRule('read a/#')).toEqual({ effect: 'allow', read: true, write: false, filter: 'a/#' })
    expect(parseRule('write a')).toEqual({ effect: 'allow', read: false, write: true, filter: 'a' })
    expect(parseRule('readwrite a b/c')).toEqual({ effect: 'allow', read: true, write: true, filter: 'a b/c' })
    expect(parseRule('a/b')).toEqual({ effect: 'allow', read: true, write: true, filter: 'a/b' })
    expect(parseRule('deny a/b')).toEqual({ effect: 'deny', read: true, write: true, filter: 'a/b' })
    expect(parseRule('deny write a/b')).toEqual({ effect: 'deny', read: false, write: true, filter: 'a/b' })
    expect(parseRule('read a/#/b')).toMatch(/"#" must be a whole level/)
    expect(parseRule('read a+')).toMatch(/"\+" must be a whole level/)
    expect(parseRule('deny')).toMatch(/no topic filter/)
  })

  it('reads the text form: topics before any user are the anonymous rules, patterns apply to everyone', () => {
    const a = acl(`# comment
topic read public/#
user alice
topic readwrite home/alice/#
topic deny home/alice/keys
user bob
topic write home/bob/#
pattern readwrite devices/%c/#
`)
    expect(a.anonymous).toHaveLength(1)
    expect([...a.users.keys()]).toEqual(['alice', 'bob'])
    expect(a.users.get('alice')).toHaveLength(2)
    expect(a.patterns).toHaveLength(1)
  })

  it('reads the same rules from YAML', () => {
    const text = acl('topic read public/#\nuser alice\ntopic readwrite home/alice/#\npattern read u/%u/#\n')
    const yaml = acl('anonymous: ["read public/#"]\nusers:\n  alice: ["readwrite home/alice/#"]\npatterns: ["read u/%u/#"]\n', 'acl.yaml')
    expect(yaml.anonymous).toEqual(text.anonymous)
    expect(yaml.users).toEqual(text.users)
    expect(yaml.patterns).toEqual(text.patterns)
  })

  it('reports every bad line of either form', () => {
    const t = parseAclFile('topic read a\nuser\ntopic read a/#/x\nallow a\n', 'acl')
    expect(t.ok ? [] : t.problems).toEqual([
      'line 2: "user" needs a user name',
      'line 3: "#" must be a whole level and the last one ("a/#/x")',
      'line 4: unknown keyword "allow" (expected user, topic or pattern)'
    ])
    const y = parseAclFile('users:\n  alice: "read a"\nother: []\npatterns: [3]\n', 'acl.yml')
    expect(y.ok ? [] : y.problems).toEqual([
      'users.alice: must be a list of rules such as "readwrite a/#"',
      'other: unknown section (expected anonymous, users or patterns)',
      'patterns[0]: each rule must be a string such as "readwrite a/#"'
    ])
  })

  it('refuses an access word with no filter instead of taking it for the topic, with the line number', () => {
    const t = parseAclFile('topic readwrite\ntopic read\nuser alice\ntopic write\ntopic deny\ntopic deny read\npattern readwrite\npattern deny write\ntopic readwrite ok/#\n', 'acl')
    expect(t.ok ? [] : t.problems).toEqual([
      'line 1: the rule "readwrite" has no topic filter',
      'line 2: the rule "read" has no topic filter',
      'line 4: the rule "write" has no topic filter',
      'line 5: the rule "deny" has no topic filter',
      'line 6: the rule "deny read" has no topic filter',
      'line 7: the rule "readwrite" has no topic filter',
      'line 8: the rule "deny write" has no topic filter'
    ])
    const y = parseAclFile('users:\n  alice: ["readwrite", "read a/#"]\npatterns: ["deny read"]\n', 'acl.yaml')
    expect(y.ok ? [] : y.problems).toEqual([
      'users.alice[0]: the rule "readwrite" has no topic filter',
      'patterns[0]: the rule "deny read" has no topic filter'
    ])
  })

  const table = acl(`topic read public/#
topic deny public/secret
user alice
topic readwrite home/alice/#
topic deny write home/alice/ro
topic read $SYS/#
user bob
topic read #
pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern deny devices/%c/locked
`)

  it('gives a user its own rules and the patterns, with %c and %u substituted', () => {
    const alice = rulesFor(table, { username: 'alice', clientId: 'dev1' })
    expect(mayWrite(alice, 'home/alice/lamp')).toBe(true)
    expect(mayWrite(alice, 'home/bob/lamp')).toBe(false)
    expect(mayWrite(alice, 'devices/dev1/state')).toBe(true)
    expect(mayWrite(alice, 'devices/dev2/state')).toBe(false)
    expect(mayRead(alice, 'users/alice/inbox')).toBe(true)
    expect(mayRead(alice, 'users/bob/inbox')).toBe(false)
    expect(mayRead(alice, 'public/news')).toBe(false)
  })

  it('lets deny win over allow, per direction', () => {
    const alice = rulesFor(table, { username: 'alice', clientId: 'dev1' })
    expect(mayRead(alice, 'home/alice/ro')).toBe(true)
    expect(mayWrite(alice, 'home/alice/ro')).toBe(false)
    expect(mayWrite(alice, 'devices/dev1/locked')).toBe(false)
    expect(mayRead(alice, 'devices/dev1/locked')).toBe(false)
  })

  it('gives anonymous clients the anonymous rules and the patterns without %u', () => {
    const anon = rulesFor(table, { username: undefined, clientId: 'dev9' })
    expect(mayRead(anon, 'public/news')).toBe(true)
    expect(mayRead(anon, 'public/secret')).toBe(false)
    expect(mayWrite(anon, 'public/news')).toBe(false)
    expect(mayWrite(anon, 'devices/dev9/x')).toBe(true)
    expect(mayRead(anon, 'users//inbox')).toBe(false)
  })

  it('does not let a client id or user name with + # or / widen an allow pattern', () => {
    for (const clientId of ['+', '#', 'dev1/../dev2', 'a/b']) {
      const rules = rulesFor(table, { username: 'carol', clientId })
      expect(mayWrite(rules, 'devices/dev2/state')).toBe(false)
      expect(mayWrite(rules, 'devices/a/b/state')).toBe(false)
    }
    expect(mayRead(rulesFor(table, { username: '+', clientId: 'x' }), 'users/bob/inbox')).toBe(false)
  })

  it('keeps $ topics out of "#": $SYS is readable only with an explicit rule', () => {
    const bob = rulesFor(table, { username: 'bob', clientId: 'b' })
    expect(mayRead(bob, 'anything/at/all')).toBe(true)
    expect(mayRead(bob, '$SYS/broker/uptime')).toBe(false)
    expect(maySubscribe(bob, '$SYS/#')).toBe(false)
    const alice = rulesFor(table, { username: 'alice', clientId: 'a' })
    expect(mayRead(alice, '$SYS/broker/uptime')).toBe(true)
    expect(maySubscribe(alice, '$SYS/#')).toBe(true)
    expect(mayRead(alice, '$DLQ/x')).toBe(false)
  })

  it('grants a subscription only inside a read rule, and withholds the denied part at delivery', () => {
    const anon = rulesFor(table, { username: undefined, clientId: 'x' })
    expect(maySubscribe(anon, 'public/#')).toBe(true)
    expect(maySubscribe(anon, 'public/secret')).toBe(false)
    expect(maySubscribe(anon, '#')).toBe(false)
    expect(maySubscribe(anon, 'public/+/x')).toBe(true)
    expect(mayRead(anon, 'public/secret')).toBe(false)
  })
})

describe('shared subscriptions and the ACL', () => {
  it('checks $share/<group>/<filter> on its filter', async () => {
    const { aclFilter } = await import('../../src/auth/hooks.js')
    expect(aclFilter('$share/g1/jobs/#')).toBe('jobs/#')
    expect(aclFilter('jobs/#')).toBe('jobs/#')
    expect(aclFilter('$share/g1')).toBe('$share/g1')
    const rules = rulesFor(acl('user w\ntopic read jobs/#\n'), { username: 'w', clientId: 'c' })
    expect(maySubscribe(rules, aclFilter('$share/g1/jobs/+'))).toBe(true)
    expect(maySubscribe(rules, aclFilter('$share/g1/other/+'))).toBe(false)
  })
})
