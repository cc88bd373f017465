/**
 * A byte count for people: `512 B`, `1.5 KiB`, `3.0 MiB`. Shared by `hearth tail` and the
 * browser viewer, which loads this file as it is: it imports nothing.
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) [v, i] = [v / 1024, i + 1]
  return `${v.toFixed(1)} ${units[i]}`
}
