// The demo store's own page logic: product list, product page, search and cart, built from
// catalog.json. It calls the tracker the way a merchant's theme would: affinity.push([...]).
(async function () {
  const page = document.body.dataset.page;
  const catalog = await (await fetch("catalog.json")).json();
  const byId = catalog.by_id;
  const params = new URLSearchParams(location.search);
  const track = (...cmd) => window.affinity.push(cmd);
  const money = (p) => (p == null ? "" : "$" + Number(p).toFixed(2));
  const item = (id) => Object.assign({ id }, byId[id]);

  const cart = {
    read: () => JSON.parse(localStorage.getItem("demo_cart") || "[]"),
    write(lines) {
      localStorage.setItem("demo_cart", JSON.stringify(lines));
      document.getElementById("cart-count").textContent = lines.reduce((n, l) => n + l.quantity, 0);
    },
  };
  cart.write(cart.read());

  function card(p) {
    const li = document.createElement("li");
    li.className = "card";
    const a = document.createElement("a");
    a.href = p.url;
    a.dataset.productId = p.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.name;
    const price = document.createElement("span");
    price.className = "price";
    price.textContent = money(p.price);
    a.append(name, price);
    a.addEventListener("click", () => track("click", p));
    li.append(a);
    return li;
  }

  if (page == "index") {
    document.getElementById("products").append(...catalog.products.slice(0, 24).map((id) => card(item(id))));
  }

  if (page == "search") {
    const q = (params.get("q") || "").trim();
    document.getElementById("search-title").textContent = q ? "Results for \u201c" + q + "\u201d" : "Search";
    if (q) {
      track("search", q);
      const words = q.toLowerCase().split(/\s+/);
      const hits = catalog.products.filter((id) => {
        const p = byId[id];
        const text = (p.name + " " + (p.category || "") + " " + (p.brand || "")).toLowerCase();
        return words.every((w) => text.includes(w));
      });
      document.getElementById("products").append(...hits.slice(0, 24).map((id) => card(item(id))));
    }
  }

  if (page == "product") {
    const id = params.get("id");
    const p = byId[id];
    const box = document.getElementById("product");
    if (!p) {
      box.textContent = "No such product.";
      return;
    }
    const prod = item(id);
    const h = document.createElement("h1");
    h.textContent = p.name;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = [p.brand, p.category, money(p.price)].filter(Boolean).join(" \u00b7 ");
    const add = document.createElement("button");
    add.id = "add-to-cart";
    add.textContent = "Add to cart";
    add.addEventListener("click", () => {
      const lines = cart.read();
      const line = lines.find((l) => l.id == id);
      if (line) line.quantity += 1;
      else lines.push({ id, category: p.category, brand: p.brand, price: p.price, quantity: 1 });
      cart.write(lines);
      track("cartAdd", prod, lines);
      add.textContent = "Added";
    });
    box.append(h, meta, add);
    document.querySelector("affinity-recommendations").setAttribute("product-id", id);
    track("view", prod);
  }

  if (page == "cart") {
    const list = document.getElementById("cart");
    const draw = () => {
      const lines = cart.read();
      list.replaceChildren(...lines.map((l) => {
        const li = document.createElement("li");
        li.dataset.productId = l.id;
        const name = document.createElement("span");
        name.textContent = (byId[l.id] || {}).name + " \u00d7 " + l.quantity;
        const rm = document.createElement("button");
        rm.className = "remove";
        rm.textContent = "Remove";
        rm.addEventListener("click", () => {
          const rest = cart.read().filter((x) => x.id != l.id);
          cart.write(rest);
          track("cartRemove", item(l.id), rest);
          draw();
        });
        li.append(name, " ", rm);
        return li;
      }));
      document.getElementById("cart-empty").hidden = lines.length > 0;
      document.getElementById("checkout").hidden = lines.length == 0;
    };
    draw();
    document.getElementById("checkout").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const lines = cart.read();
      const email = document.getElementById("email").value.trim();
      if (email) track("identify", { email });
      track("purchase", { order_id: "demo-" + Date.now(), currency: "USD", items: lines });
      cart.write([]);
      draw();
      document.getElementById("thanks").hidden = false;
    });
  }
})();
