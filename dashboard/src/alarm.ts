import { t } from "./i18n.ts";

let audio: AudioContext | undefined;

/** A new alert must not be missed: a two-tone chime and, when allowed, a system notification. */
export function raiseAlarm(title: string, body: string): void {
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
    // No audio device: the notification and the red card remain.
  }
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
