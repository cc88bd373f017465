import { Feed, type FeedEvent, type FeedState } from './feed.js'
import { formatBytes } from '../shared/size.js'

/**
 * The live viewer served at `/` (SPEC §10): the homeserver's key, head and floor, one
 * `/subscribe` filter, a table of events newest first (opening with the latest RECENT that
 * match, or from now, or from the start, or below them the files the filter covers as they
 * are: a snapshot), pause/resume and the lag behind the head.
 * Everything the server sends is user data and goes into the page as text (textContent,
 * attributes set as properties), never as markup.
 */

interface Info {
  publicKey: string
  events: { head: string; floor: string }
}

const MAX_ROWS = 500
/** the events a follow opens with, by default: the newest that match */
const RECENT = 50
const INFO_EVERY_MS = 2000

/** Where a follow starts: with the newest RECENT matches, after the head, at the first event, or with the files as they are. */
type From = 'recent' | 'now' | 'start' | 'snapshot'

const el = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const form = el<HTMLFormElement>('follow')
const filterBox = el<HTMLInputElement>('filter')
const fromBox = el<HTMLSelectElement>('from')
const pauseButton = el<HTMLButtonElement>('pause')
const rows = el<HTMLTableSectionElement>('rows')
const notice = el<HTMLParagraphElement>('notice')

let head: bigint | undefined
let read = 0n
let feed: Feed | undefined
let paused = false
/** bumped by every follow(), so an older one still waiting for /info gives way */
let follows = 0

async function fetchInfo(): Promise<Info> {
  const res = await fetch('/info', { cache: 'no-store' })
  if (!res.ok) throw new Error(`/info answered ${res.status}`)
  return (await res.json()) as Info
}

/** Keeps key, head and floor fresh; the lag is measured against this head. */
async function refreshInfo(): Promise<Info | undefined> {
  try {
    const info = await fetchInfo()
    el('key').textContent = info.publicKey
    el('floor').textContent = info.events.floor
    const h = BigInt(info.events.head)
    if (head === undefined || h > head) head = h
    show()
    return info
  } catch {
    return undefined // the server is away: the stream's state says so
  }
}

/** Starts following `filter` with the newest matches, from now or from the start; the table starts empty. */
async function follow(filter: string, from: From): Promise<void> {
  const run = ++follows
  feed?.stop()
  feed = undefined
  rows.replaceChildren()
  hideNotice()
  let info = await refreshInfo()
  while (info === undefined && run === follows) {
    setState('reconnecting')
    await new Promise((r) => setTimeout(r, INFO_EVERY_MS))
    info = await refreshInfo()
  }
  if (info === undefined || run !== follows) return
  // 'now' is the head as /info gave it, so nothing written after this moment can be missed,
  // even if the first connection drops before its first frame. 'recent' lets the server find
  // where the newest matches start; the ids of what it sends carry the feed on from there.
  const start = from === 'snapshot' ? { snapshot: true as const } : from === 'recent' ? { recent: RECENT } : { after: from === 'start' ? '0' : info.events.head }
  read = from === 'start' ? 0n : BigInt(info.events.head)
  const params = new URLSearchParams()
  if (filter !== '') params.set('filter', filter)
  if (from !== 'recent') params.set('from', from)
  const query = params.toString()
  history.replaceState(null, '', query === '' ? location.pathname : `?${query}`)
  feed = new Feed(filter, start, {
    event: addRow,
    position: (seq) => {
      read = seq
      if (head === undefined || seq > head) head = seq
      show()
    },
    reset: (requested, floor) => showNotice(`Events after ${requested} up to ${floor} were pruned by the homeserver; continuing from ${floor}.`),
    synced: addSynced,
    restart: (requested, floor) => {
      rows.replaceChildren()
      showNotice(`The homeserver pruned events after ${requested} up to ${floor} that the snapshot needed; it starts again.`)
    },
    state: (state, detail) => {
      if (state === 'refused') showNotice(`The homeserver refused this filter: ${detail ?? 'unknown reason'}`)
      setState(state)
    },
  })
  paused = false
  feed.start()
  showPause()
}

/**
 * One row: an event on top (the table is newest first), or a file of a snapshot at the
 * bottom, so the files read top to bottom in key order, below the events after them.
 */
function addRow(ev: FeedEvent): void {
  const tr = document.createElement('tr')
  tr.dataset.id = ev.id
  tr.className = ev.snapshot === true ? 'file' : ev.type === 'PUT' ? 'put' : 'del'
  cell(tr, 'id', ev.id)
  cell(tr, 'type', ev.snapshot === true ? 'FILE' : ev.type)
  cell(tr, 'user', `${ev.user.slice(0, 6)}…${ev.user.slice(-4)}`).title = ev.user
  const path = cell(tr, 'path', '')
  if (ev.type === 'PUT' && ev.path.startsWith('/pub/')) {
    const a = document.createElement('a')
    a.href = `/storage/${ev.user}${ev.path.split('/').map(encodeURIComponent).join('/')}`
    a.textContent = ev.path
    path.append(a)
  } else {
    path.textContent = ev.path
  }
  cell(tr, 'size', ev.size === undefined ? '' : formatBytes(ev.size))
  const time = new Date(ev.ts)
  cell(tr, 'time', time.toLocaleTimeString()).title = time.toISOString()
  if (ev.snapshot === true) rows.append(tr)
  else rows.prepend(tr)
  while (rows.rows.length > MAX_ROWS) rows.lastElementChild!.remove()
}

/** Where a snapshot ends: the files as of `seq` below this row, the events after it above. */
function addSynced(seq: string, files: number): void {
  const tr = document.createElement('tr')
  tr.className = 'synced'
  tr.dataset.synced = seq
  cell(tr, 'synced', `↓ the ${files} files as of ${seq} · ↑ the events after it`).colSpan = 6
  rows.prepend(tr)
}

function cell(tr: HTMLTableRowElement, label: string, text: string): HTMLTableCellElement {
  const td = tr.insertCell()
  td.dataset.label = label
  td.className = label
  td.textContent = text
  return td
}


const STATE_TEXT: Record<FeedState, string> = {
  connecting: 'connecting…',
  open: 'connected',
  reconnecting: 'disconnected, reconnecting…',
  stopped: 'paused',
  refused: 'stopped',
}

function setState(state: FeedState): void {
  document.body.dataset.state = state
  el('state').textContent = STATE_TEXT[state]
  show()
}

/**
 * The lag: events in the log past the last position the stream reported. Positions come
 * with every matching event, while the server scans, and with each keepalive of a live
 * stream, so between keepalives a narrow filter also counts events it will never match.
 */
function show(): void {
  el('head').textContent = head === undefined ? '…' : String(head)
  el('lag').textContent = String(head === undefined || head < read ? 0n : head - read)
}

function showPause(): void {
  pauseButton.textContent = paused ? 'Resume' : 'Pause'
  pauseButton.setAttribute('aria-pressed', String(paused))
}

function togglePause(): void {
  if (feed === undefined) return
  paused = !paused
  if (paused) feed.stop()
  else feed.start()
  showPause()
}

function showNotice(text: string): void {
  notice.textContent = text
  notice.hidden = false
}

function hideNotice(): void {
  notice.hidden = true
  notice.textContent = ''
}

const fromOf = (v: string | null): From => (v === 'now' || v === 'start' || v === 'snapshot' ? v : 'recent')
const chosenFrom = () => fromOf(fromBox.value)
form.addEventListener('submit', (e) => {
  e.preventDefault()
  void follow(filterBox.value.trim(), chosenFrom())
})
// choosing where to start follows at once: "from the start" is one choice away
fromBox.addEventListener('change', () => void follow(filterBox.value.trim(), chosenFrom()))
pauseButton.addEventListener('click', togglePause)
// `/` jumps to the filter box and `p` pauses, unless the user is typing somewhere.
document.addEventListener('keydown', (e) => {
  const target = e.target as HTMLElement
  if (e.ctrlKey || e.metaKey || e.altKey || target.closest('input, select, textarea')) return
  if (e.key === '/') {
    e.preventDefault()
    filterBox.focus()
  } else if (e.key === 'p') {
    togglePause()
  }
})
setInterval(() => void refreshInfo(), INFO_EVERY_MS)

const initial = new URLSearchParams(location.search)
filterBox.value = initial.get('filter') ?? ''
fromBox.value = fromOf(initial.get('from'))
void follow(filterBox.value.trim(), chosenFrom())
