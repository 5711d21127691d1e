//! Row generation: every value of a record from `(seed, entity, company, index)`.

use super::{Dataset, Entity, LINES_PER_ORDER, Record, Val};
use crate::rng::SplitMix64;
use crate::time::ms_to_yyyymmdd;

/// 2024-01-01T00:00:00Z: base change stamps lie in the two years from here.
const BASE_MS: i64 = 1_704_067_200_000;
const SPAN_MS: u64 = 730 * 86_400_000;
const DAY_MS: i64 = 86_400_000;

const ADJ: [&str; 16] = [
    "Nordic", "Alpine", "Coastal", "Golden", "Silver", "Northern", "Royal", "Green", "Blue",
    "Swift", "Prime", "United", "Central", "Pacific", "Atlantic", "Baltic",
];
const NOUN: [&str; 16] = [
    "Timber",
    "Steel",
    "Foods",
    "Textiles",
    "Machines",
    "Logistics",
    "Paper",
    "Tools",
    "Fabrics",
    "Motors",
    "Dairy",
    "Furniture",
    "Plastics",
    "Electrics",
    "Chemicals",
    "Glass",
];
const SUFFIX: [&str; 6] = ["AB", "GmbH", "Inc", "Ltd", "Oy", "BV"];
const STREETS: [&str; 8] = [
    "Main Street",
    "Harbour Road",
    "Mill Lane",
    "Station Road",
    "Church Street",
    "Park Avenue",
    "King Street",
    "Market Square",
];
/// Town, country, currency, phone prefix.
const CITIES: [(&str, &str, &str, &str); 10] = [
    ("Stockholm", "SE", "SEK", "+46"),
    ("Gothenburg", "SE", "SEK", "+46"),
    ("Hamburg", "DE", "EUR", "+49"),
    ("Munich", "DE", "EUR", "+49"),
    ("Chicago", "US", "USD", "+1"),
    ("Boston", "US", "USD", "+1"),
    ("Manchester", "GB", "GBP", "+44"),
    ("Rotterdam", "NL", "EUR", "+31"),
    ("Helsinki", "FI", "EUR", "+358"),
    ("Lyon", "FR", "EUR", "+33"),
];
const ITEM_ADJ: [&str; 10] = [
    "Heavy", "Light", "Compact", "Premium", "Basic", "Steel", "Oak", "Rubber", "Copper", "Nylon",
];
const ITEM_NOUN: [&str; 10] = [
    "Bolt", "Bracket", "Hinge", "Valve", "Panel", "Gasket", "Bearing", "Cable", "Spring", "Pump",
];

fn stamps(rng: &mut SplitMix64) -> (i64, u32, i64) {
    let lmts = BASE_MS + rng.below(SPAN_MS) as i64;
    let rgdt = ms_to_yyyymmdd(lmts - rng.below(365) as i64 * DAY_MS);
    let chno = 1 + rng.below(9) as i64;
    (lmts, rgdt, chno)
}

fn phone(rng: &mut SplitMix64, prefix: &str) -> String {
    format!("{prefix} {:03} {:04}", rng.below(1000), rng.below(10_000))
}

fn s(v: impl Into<String>) -> Val {
    Val::Str(v.into())
}

pub(super) fn record(ds: &Dataset, entity: Entity, cono: u32, index: u64) -> Record {
    let mut rng = ds.rng(entity, cono, index);
    let c = i64::from(cono);
    let values = match entity {
        Entity::Customer => {
            let name = format!(
                "{} {} {}",
                rng.pick(&ADJ),
                rng.pick(&NOUN),
                rng.pick(&SUFFIX)
            );
            let addr = format!("{} {}", rng.pick(&STREETS), 1 + rng.below(200));
            let (town, cscd, cucd, prefix) = *rng.pick(&CITIES);
            let phno = phone(&mut rng, prefix);
            let stat = if rng.below(20) == 0 { "90" } else { "20" };
            let cutp = rng.below(4) as i64;
            let crlm = (rng.below(1000) as i64) * 10_000;
            let (lmts, rgdt, chno) = stamps(&mut rng);
            vec![
                Val::Int(c),
                s(ds.key(entity, index)),
                s(name),
                s(addr),
                s(town),
                s(cscd),
                s(phno),
                s(cucd),
                s(stat),
                Val::Int(cutp),
                Val::Dec(crlm, 2),
                Val::Date(rgdt),
                Val::Date(ms_to_yyyymmdd(lmts)),
                Val::Ts(lmts),
                Val::Int(chno),
                Val::Bool(false),
            ]
        }
        Entity::Item => {
            let (adj, noun) = (*rng.pick(&ITEM_ADJ), *rng.pick(&ITEM_NOUN));
            let size = 4 + rng.below(60);
            let itds = format!("{adj} {noun} {size}");
            let fuds = format!("{adj} {noun}, size {size} mm, {} finish", rng.pick(&ADJ));
            let itty = *rng.pick(&["FG", "RM", "SP"]);
            let itgr = *rng.pick(&["A10", "B20", "C30", "D40"]);
            let unms = *rng.pick(&["PCS", "KG", "M"]);
            let newe = rng.below(100_000) as i64;
            let sapr = 100 + rng.below(99_900) as i64;
            let (lmts, rgdt, chno) = stamps(&mut rng);
            vec![
                Val::Int(c),
                s(ds.key(entity, index)),
                s(itds),
                s(fuds),
                s(itty),
                s(itgr),
                s(unms),
                s("20"),
                Val::Dec(newe, 3),
                Val::Dec(sapr, 2),
                Val::Date(rgdt),
                Val::Date(ms_to_yyyymmdd(lmts)),
                Val::Ts(lmts),
                Val::Int(chno),
                Val::Bool(false),
            ]
        }
        Entity::Supplier => {
            let name = format!(
                "{} {} Supply {}",
                rng.pick(&ADJ),
                rng.pick(&NOUN),
                rng.pick(&SUFFIX)
            );
            let (town, cscd, cucd, prefix) = *rng.pick(&CITIES);
            let phno = phone(&mut rng, prefix);
            let (lmts, rgdt, chno) = stamps(&mut rng);
            vec![
                Val::Int(c),
                s(ds.key(entity, index)),
                s(name),
                s(town),
                s(cscd),
                s(cucd),
                s(phno),
                s("20"),
                Val::Date(rgdt),
                Val::Date(ms_to_yyyymmdd(lmts)),
                Val::Ts(lmts),
                Val::Int(chno),
                Val::Bool(false),
            ]
        }
        Entity::OrderHead => order_head(ds, cono, index, &mut rng),
        Entity::OrderLine => {
            let order = index / LINES_PER_ORDER;
            let head = ds.record(Entity::OrderHead, cono, order);
            let ponr = (index % LINES_PER_ORDER + 1) as i64;
            let items = ds.count(Entity::Item, cono);
            let itno = ds.key(Entity::Item, rng.below(items));
            let qty = 1 + rng.below(50) as i64;
            let price = 100 + rng.below(99_900) as i64;
            let ordt = match head.values[4] {
                Val::Date(d) => d,
                _ => 20_240_101,
            };
            // `ordt` was written by `ms_to_yyyymmdd`: always a real date.
            let ordered = crate::time::yyyymmdd_to_ms(ordt).unwrap_or_default();
            let dwdt = ms_to_yyyymmdd(ordered + (1 + rng.below(30) as i64) * DAY_MS);
            let (lmts, _, chno) = stamps(&mut rng);
            vec![
                Val::Int(c),
                head.values[1].clone(),
                head.values[2].clone(),
                Val::Int(ponr),
                Val::Int(0),
                s(itno),
                head.values[3].clone(),
                Val::Dec(qty * 100, 2),
                Val::Dec(price, 2),
                Val::Dec(qty * price, 2),
                head.values[6].clone(),
                Val::Date(dwdt),
                Val::Date(ms_to_yyyymmdd(lmts)),
                Val::Ts(lmts),
                Val::Int(chno),
                Val::Bool(false),
            ]
        }
    };
    Record {
        entity,
        cono,
        index,
        values,
    }
}

fn order_head(ds: &Dataset, cono: u32, index: u64, rng: &mut SplitMix64) -> Vec<Val> {
    let divi = super::Dataset::company(cono).map_or("", |c| c.divi);
    let customers = ds.count(Entity::Customer, cono);
    let cuno = ds.key(Entity::Customer, rng.below(customers));
    let ortp = *rng.pick(&["S01", "S02", "S10"]);
    let orst = *rng.pick(&["22", "33", "44", "66", "77"]);
    let cucd = rng.pick(&CITIES).2;
    let (lmts, ordt, chno) = stamps(rng);
    vec![
        Val::Int(i64::from(cono)),
        s(divi),
        s(ds.key(Entity::OrderHead, index)),
        s(cuno),
        Val::Date(ordt),
        s(ortp),
        s(orst),
        s(cucd),
        Val::Date(ms_to_yyyymmdd(lmts)),
        Val::Ts(lmts),
        Val::Int(chno),
        Val::Bool(false),
    ]
}
