import { api } from "./api.ts";
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

/**
 * A system notification for a new alert, when the user allowed them: through the service worker
 * where there is one (phones allow no other way), tagged with the alert, so that its push, when
 * this phone has push on, replaces it rather than ringing twice.
 */
export function notifySystem(title: string, body: string, alertId: string): void {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const options = { body, tag: alertId, requireInteraction: true };
  void (async () => {
    const registration = await navigator.serviceWorker?.getRegistration("/");
    if (registration) await registration.showNotification(title, options);
    else new Notification(title, options);
  })().catch(() => undefined);
}

/** Creates the audio context inside a user gesture, the only place browsers allow it to play. */
export function unlockAudio(): void {
  audio ??= new AudioContext();
  void audio.resume();
}

/** The service worker that shows pushes; browsers allow it on https and on localhost only. */
export function registerWorker(): void {
  if ("serviceWorker" in navigator) void navigator.serviceWorker.register("/sw.js").catch(() => undefined);
}

/** This browser's push subscription, when the page may push (a secure page with a worker). */
async function pushRegistration(): Promise<ServiceWorkerRegistration | undefined> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return undefined;
  // Registered (registerWorker), then active: only an active worker can subscribe.
  return (await navigator.serviceWorker.getRegistration("/")) && navigator.serviceWorker.ready;
}

/**
 * "Turn on alerts on this phone": system notifications while the page is open and, for an account
 * that is someone (`canPush`), Web Push, so that a locked phone rings; tapped again, turns push off.
 * Says how far it got: push on, the page's notifications only, blocked, or failed.
 */
export function notificationsButton(canPush: boolean): HTMLButtonElement | null {
  if (!("Notification" in window)) return null;
  const button = document.createElement("button");
  button.className = "link";
  button.id = "notify";
  const show = (state: "enable" | "on" | "pageOnly" | "denied" | "failed") => {
    button.textContent = t(`notify.${state}`);
    button.dataset.state = state;
  };
  show(Notification.permission === "denied" ? "denied" : "enable");
  void (async () => {
    const subscription = await (await pushRegistration())?.pushManager.getSubscription();
    if (subscription && Notification.permission === "granted") show("on");
  })();
  button.addEventListener("click", async () => {
    unlockAudio();
    try {
      const registration = canPush ? await pushRegistration() : undefined;
      const current = await registration?.pushManager.getSubscription();
      if (current && button.dataset.state === "on") {
        await api.pushUnsubscribe(current.endpoint).catch(() => undefined);
        await current.unsubscribe();
        return show("enable");
      }
      if ((await Notification.requestPermission()) !== "granted") return show("denied");
      if (!registration) return show("pageOnly");
      const subscription =
        current ??
        (await registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: fromBase64url(await api.pushKey()),
        }));
      await api.pushSubscribe(subscription.toJSON());
      show("on");
    } catch {
      show("failed");
    }
  });
  return button;
}

const fromBase64url = (text: string) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
