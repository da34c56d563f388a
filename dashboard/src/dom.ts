type Child = Node | string | number | null | undefined | false;

/** Creates an element: `h("button", { class: "primary", onclick }, "Accept")`. Text is never parsed as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, unknown> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Drops the empty slots of a child list, for `replaceChildren(...present(a, cond && b))`. */
export function present(...children: Child[]): (Node | string)[] {
  return children.flatMap((c) =>
    c === null || c === undefined || c === false ? [] : [c instanceof Node ? c : String(c)],
  );
}

/** A phone number as a `tel:` link: spaces and dashes dropped. */
export const telHref = (phone: string) => `tel:${phone.replace(/[^\d+]/g, "")}`;
