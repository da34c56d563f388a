import { t } from "./i18n.ts";

/** How often the chime repeats while an alert waits for someone to accept it. */
const REPEAT_MS = 4000;
const icon = (fill: string) =>
  `data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='%23${fill}'/%3E%3C/svg%3E`;

let audio: AudioContext | undefined;

function chime(): void {
  try {
    if (!audio) throw new Error("audio not unlocked yet");
    const now = audio.currentTime;
    for (const [i, freq] of [880, 660, 880].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.25, now + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.001, now + i * 0.25 + 0.22);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.25);
      osc.stop(now + i * 0.25 + 0.23);
    }
  } catch {
    // No audio device: the title, the icon, the notification and the red card remain.
  }
}

/**
 * Loud until answered: while any alert waits for a responder the chime repeats, the title counts
 * them and the icon turns red; muting silences the chime only, for a while. The page's root
 * element carries `data-alarm` (ringing, muted, quiet) and `data-chimes` (how many sounded).
 */
export class Alarm {
  private waiting = 0;
  private timer: number | undefined;
  private chimes = 0;
  mutedUntil = 0;

  /** Called after every change with the alerts waiting for someone to accept them. */
  sync(waiting: number): void {
    const more = waiting > this.waiting;
    this.waiting = waiting;
    const title = t("app.title");
    document.title = waiting > 0 ? `(${waiting}) ${title}` : title;
    document.querySelector("link[rel=icon]")?.setAttribute("href", icon(waiting > 0 ? "b00020" : "6b7280"));
    if (waiting > 0 && this.timer === undefined) {
      this.ring();
      this.timer = window.setInterval(() => this.ring(), REPEAT_MS);
    } else if (waiting === 0 && this.timer !== undefined) {
      window.clearInterval(this.timer);
      this.timer = undefined;
    } else if (more) {
      // Another one while ringing: sound now, not at the next repeat.
      this.ring();
    }
    this.mark();
  }

  mute(minutes: number): void {
    this.mutedUntil = Date.now() + minutes * 60_000;
    this.mark();
  }

  unmute(): void {
    this.mutedUntil = 0;
    this.ring();
  }

  get muted(): boolean {
    return Date.now() < this.mutedUntil;
  }

  private ring(): void {
    if (this.waiting > 0 && !this.muted) {
      chime();
      this.chimes++;
    }
    this.mark();
  }

  private mark(): void {
    const root = document.documentElement.dataset;
    root.alarm = this.waiting === 0 ? "quiet" : this.muted ? "muted" : "ringing";
    root.chimes = String(this.chimes);
  }
}

/** A system notification for a new alert, when the user allowed them. */
export function notifySystem(title: string, body: string): void {
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification(title, { body, tag: title, requireInteraction: true });
  }
}

/** Creates the audio context inside a user gesture, the only place browsers allow it to play. */
export function unlockAudio(): void {
  audio ??= new AudioContext();
  void audio.resume();
}

export function notificationsButton(): HTMLButtonElement | null {
  if (!("Notification" in window) || Notification.permission === "granted") return null;
  const button = document.createElement("button");
  button.textContent = t("notify.enable");
  button.className = "link";
  button.addEventListener("click", async () => {
    unlockAudio();
    if ((await Notification.requestPermission()) === "granted") button.textContent = t("notify.on");
  });
  return button;
}
