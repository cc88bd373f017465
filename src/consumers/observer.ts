/** What consumers report to metrics, with no consumer id or user key in it. */
export interface ConsumerObserver {
  /** events written to consumer streams; `redelivered` of them went out before */
  delivered(n: number, redelivered: number): void
  acked(n: number): void
  dead(reason: 'maxDeliver' | 'term', n: number): void
  /** one durable commit of a consumer's state, grouping `changes` changes (claims, acks, releases) */
  committed(changes: number): void
}

export const NO_CONSUMER_OBSERVER: ConsumerObserver = { delivered() {}, acked() {}, dead() {}, committed() {} }
