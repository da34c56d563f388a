import fc from "fast-check";

/**
 * Seconds each fuzzer, or each property, runs for. Short by default so the suite stays quick;
 * `FUZZ_SECONDS=120 npx vitest run test/property` for a long local run.
 */
export function fuzzSeconds(fallback: number): number {
  const seconds = Number(process.env.FUZZ_SECONDS ?? fallback);
  if (!(seconds > 0))
    throw new Error(`FUZZ_SECONDS must be a positive number of seconds, not '${process.env.FUZZ_SECONDS}'`);
  return seconds;
}

/** Default time budget of one property, in seconds. */
const PROPERTY_SECONDS = 1;

/** A vitest timeout that leaves room for the budget and for shrinking a counter-example. */
export const propertyTimeoutMs = () => fuzzSeconds(PROPERTY_SECONDS) * 1000 + 30_000;

/**
 * Checks a property on at least `minRuns` generated cases whatever the machine's speed, then on
 * more until the time budget is spent, and logs how many cases ran. Throws fast-check's report
 * (seed, path and shrunk counter-example) on the first failure.
 */
export function checkProperty<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => void,
  minRuns = 200,
): void {
  let cases = 0;
  const property = fc.property(arbitrary, (value) => {
    cases++;
    predicate(value);
  });
  fc.assert(property, { numRuns: minRuns });
  fc.assert(property, {
    numRuns: Number.MAX_SAFE_INTEGER,
    plugins: [fc.interruptAfterTimeLimit(fuzzSeconds(PROPERTY_SECONDS) * 1000)],
  });
  console.log(`fuzz ${name}: ${cases} cases, 0 failures`);
}
