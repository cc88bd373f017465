import t from 'tap'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { startTestServer, newUser } from './helpers/server.js'
import { Scrape } from './helpers/prometheus.js'

// No container engine runs here: the compose file, the Prometheus and Grafana provisioning
// and the dashboard are checked as documents, against each other and against a real scrape.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const LOCAL = '${HEARTH_BIND:-127.0.0.1}:'
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8')
// merge keys (`<<: *anchor`) as Compose reads them
const yaml = (path: string) => parse(read(path), { merge: true }) as any

interface Panel {
  type: string
  title: string
  gridPos: { h: number; w: number; x: number; y: number }
  datasource?: { type: string; uid: string }
  targets?: { refId: string; expr: string; datasource: { uid: string } }[]
}

t.test('docker-compose.yml: Hearth with /readyz, and a monitoring profile of official images', async (t) => {
  const compose = yaml('docker-compose.yml')
  const { hearth, prometheus, grafana } = compose.services
  t.equal(hearth.build, '.', 'hearth is built from this repository')
  t.match(hearth.healthcheck.test.join(' '), /\/readyz/, 'its health check asks /readyz')
  const metricsPort = Number(hearth.environment.METRICS_PORT)
  t.ok(metricsPort > 0, 'the metrics listener is on')
  t.notOk((hearth.ports as string[]).some((p) => p.split(':').at(-1) === String(metricsPort)), 'and its port is not published')
  t.equal(hearth.profiles, undefined, 'hearth runs without a profile')
  // open sign-up is safe by default only because nobody else can reach it
  for (const [name, service] of Object.entries(compose.services as Record<string, { image?: string; ports?: string[] }>)) {
    if (!service.image?.startsWith('hearth')) continue
    for (const port of service.ports ?? []) t.ok(port.startsWith(LOCAL), `${name}: published on localhost unless HEARTH_BIND says otherwise (${port})`)
  }

  t.match(prometheus.image, /^prom\/prometheus:v\d+\.\d+\.\d+$/, 'Prometheus: the official image, pinned')
  t.match(grafana.image, /^grafana\/grafana:\d+\.\d+\.\d+$/, 'Grafana: the official image, pinned')
  for (const [name, service] of [['prometheus', prometheus], ['grafana', grafana]] as const) {
    t.same(service.profiles, ['monitoring'], `${name} runs only with --profile monitoring`)
    for (const port of service.ports as string[]) t.match(port, /^127\.0\.0\.1:/, `${name} listens on localhost only`)
  }
  t.equal(prometheus.depends_on.hearth.condition, 'service_healthy')

  // the postgres profile: PostgreSQL and two instances on one database, nothing else changed
  const { postgres } = compose.services
  t.match(postgres.image, /^postgres:1[5-9]$/, 'PostgreSQL 15 or newer, the official image')
  t.same(postgres.profiles, ['postgres'])
  const instances = Object.entries(compose.services).filter(([name]) => name.startsWith('hearth-pg-')) as [string, Record<string, any>][]
  t.equal(instances.length, 2, 'two Hearth instances')
  const urls = new Set<string>()
  for (const [name, s] of instances) {
    t.same(s.profiles, ['postgres'], `${name} runs only with --profile postgres`)
    t.match(s.environment.DATABASE_URL, /^postgres:\/\/[^@]+@postgres:5432\/hearth$/, `${name} uses the postgres service`)
    urls.add(s.environment.DATABASE_URL)
    t.match(s.healthcheck.test.join(' '), /\/readyz/, `${name}'s health check asks /readyz`)
    t.equal(s.depends_on.postgres.condition, 'service_healthy', `${name} starts once PostgreSQL is ready`)
    t.equal(s.volumes, undefined, `${name} keeps nothing on local disk`)
  }
  t.equal(urls.size, 1, 'both on one database')
  t.not(instances[0]![1].ports[0], instances[1]![1].ports[0], 'on different host ports')

  // the relay profile: `hearth relay` from the same image, following the hearth service
  const relay = compose.services['hearth-relay']
  t.same(relay.profiles, ['relay'], 'the relay runs only with --profile relay')
  t.same(relay.command, ['relay'])
  t.equal(relay.image, hearth.image, 'the same image')
  t.match(relay.environment.RELAY_UPSTREAMS, /\$\{HEARTH_KEY:-\}@http:\/\/hearth:6286\}$/, 'it follows the hearth service by default, pinned to its key')
  t.equal(relay.ports[0], `${LOCAL}${relay.environment.PORT}:${relay.environment.PORT}`, 'on its own port')
  t.match(relay.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${relay.environment.PORT}/readyz`), 'its health check asks its /readyz')
  t.equal(relay.depends_on.hearth.condition, 'service_healthy')

  // every bind mount names a file or folder of this repository
  const mounts = new Map<string, string>()
  for (const service of Object.values(compose.services) as { volumes?: string[] }[]) {
    for (const v of service.volumes ?? []) {
      const [source, target] = v.split(':') as [string, string]
      if (!source.startsWith('./')) {
        t.ok(Object.hasOwn(compose.volumes, source), `${source} is a declared volume`)
        continue
      }
      t.ok(existsSync(join(ROOT, source)), `${source} exists`)
      mounts.set(target, source)
    }
  }

  // Prometheus scrapes the metrics port of the hearth service
  const promConfig = prometheus.command.find((c: string) => c.startsWith('--config.file=')).slice('--config.file='.length)
  const prom = yaml(mounts.get(promConfig)!)
  const job = prom.scrape_configs.find((j: { job_name: string }) => j.job_name === 'hearth')
  t.same(job.static_configs[0].targets, [`hearth:${metricsPort}`], 'Prometheus targets hearth on METRICS_PORT')
  t.equal(job.metrics_path ?? '/metrics', '/metrics')

  // Grafana: the data source the dashboard names, and the dashboards folder it is mounted at
  const provisioning = mounts.get('/etc/grafana/provisioning')!
  const sources = yaml(`${provisioning}/datasources/prometheus.yml`).datasources
  t.equal(sources[0].url, `http://prometheus:${prometheus.ports[0].split(':').at(-1)}`, 'Grafana reads the Prometheus service')
  const providers = yaml(`${provisioning}/dashboards/hearth.yml`).providers
  const folder = mounts.get(providers[0].options.path)
  t.ok(folder, 'the dashboards provider reads a mounted folder')
  t.ok(existsSync(join(ROOT, folder!, 'hearth.json')), 'which holds the dashboard')
  t.equal(join(providers[0].options.path, 'hearth.json'), grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH)
  t.equal(sources[0].uid, 'prometheus')
})

t.test("the Dockerfile builds what the package ships, the viewer's static files too", async (t) => {
  const docker = read('Dockerfile')
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> }
  t.match(docker, /RUN npx tsc -b tsconfig\.build\.json && npm run build:finish/, 'the same two steps as prepack')
  t.match(pkg.scripts.prepack!, /tsc -b --force tsconfig\.build\.json && npm run build:finish$/)
  t.match(docker, /COPY src \.\/src/, 'with src/, where the viewer\'s static files are')
  // the client package is a workspace the server links to: its manifest before npm ci, its
  // sources before the build, its build in the image
  t.match(docker, /COPY packages\/client\/package\.json packages\/client\/tsconfig\.json \.\/packages\/client\/\nRUN npm ci/)
  t.match(docker, /COPY packages\/client\/src \.\/packages\/client\/src/)
  t.match(docker, /COPY --from=build \/app\/packages\/client\/dist \.\/packages\/client\/dist/)
  // the build a link points at keeps its bin runnable (npm pack's prepack rebuilds dist/)
  t.ok(statSync(fileURLToPath(new URL('../src/cli/index.js', import.meta.url))).mode & 0o100, 'the built CLI is executable')
})

t.test('the Dockerfile health check asks /readyz', async (t) => {
  const check = read('Dockerfile').split('\n').findIndex((l) => l.startsWith('HEALTHCHECK'))
  t.ok(check >= 0)
  t.match(read('Dockerfile').split('\n')[check + 1], /\/readyz/)
})

t.test('the Grafana dashboard queries only metrics and labels a real scrape has', async (t) => {
  const dash = JSON.parse(read('deploy/grafana/dashboards/hearth.json')) as { uid: string; title: string; schemaVersion: number; panels: Panel[] }
  t.ok(dash.uid && dash.title && dash.schemaVersion >= 30, 'a dashboard: uid, title, schema version')

  const server = await startTestServer(t, { METRICS_PORT: '0' })
  await newUser(server)
  const scrape = await Scrape.of(server.metricsUrl!)
  const names = new Set(scrape.samples.map((s) => s.name))
  const labelsOf = (name: string) => new Set(scrape.samples.filter((s) => s.name === name).flatMap((s) => Object.keys(s.labels)))

  const graphs = dash.panels.filter((p) => p.type !== 'row')
  t.ok(graphs.length >= 12)
  const queried = new Set<string>()
  for (const panel of graphs) {
    t.equal(panel.datasource?.uid, 'prometheus', `${panel.title}: the provisioned data source`)
    t.ok(panel.gridPos.w > 0 && panel.gridPos.h > 0 && panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: placed on the grid`)
    t.ok(panel.targets!.length > 0)
    for (const target of panel.targets!) {
      const metrics = [...target.expr.matchAll(/\bhearth_[a-z0-9_]+/g)].map((m) => m[0])
      t.ok(metrics.length > 0, `${panel.title}: ${target.expr} queries hearth metrics`)
      for (const metric of metrics) {
        queried.add(scrape.family(metric) ?? metric)
        t.ok(names.has(metric), `${panel.title}: ${metric} is in the scrape`)
      }
      for (const by of target.expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of by[1]!.split(',').map((l) => l.trim())) {
          t.ok(metrics.some((m) => labelsOf(m).has(label)), `${panel.title}: ${label} is a label of ${metrics.join(', ')}`)
        }
      }
    }
  }
  // every metric of Hearth's own is plotted (the process's own are plotted in part)
  for (const family of scrape.types.keys()) {
    if (/^hearth_(process|nodejs)_/.test(family)) continue
    t.ok(queried.has(family), `${family} is on the dashboard`)
  }
})
