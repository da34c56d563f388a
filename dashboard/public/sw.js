// The dashboard's service worker: shows the gateway's Web Push messages, so that a locked phone
// rings, and opens the alert when one is tapped. Served from the root, never cached (no-cache).

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    // Not ours to read: still say something arrived, as browsers require of every push.
  }
  event.waitUntil(
    self.registration.showNotification(data.title || "社区安全", {
      body: data.body || "",
      // One notification per alert: a follow-up (accepted, resolved) replaces the page.
      tag: data.alertId || "alert",
      renotify: true,
      requireInteraction: true,
      vibrate: [600, 200, 600, 200, 600],
      icon: "/icon-192.png",
      badge: "/icon-192.png",
      data: { link: data.link || "/#alerts" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  // The link names the gateway by PUBLIC_URL; the phone may know it by another address.
  const link = new URL(event.notification.data?.link || "/#alerts", self.location.origin);
  const target = new URL(link.pathname + link.search + link.hash, self.location.origin).href;
  event.waitUntil(
    (async () => {
      const [open] = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      if (!open) return self.clients.openWindow(target);
      const focused = await open.focus();
      return focused.navigate ? focused.navigate(target) : focused;
    })(),
  );
});
