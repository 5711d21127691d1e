#![allow(clippy::unwrap_used)]

use ionport_emulator::RunningEmulator;
use ionport_emulator::data::Entity;
use serde_json::Value;

use crate::common::*;

const BP: &str = "/LN/lnapi/odata/tcapi.comBusinessPartner/BusinessPartners";

async fn ln_get(
    emu: &RunningEmulator,
    at: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let full = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}{url}", emu.api_base())
    };
    let mut req = client().get(full).bearer_auth(at);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), h)
}

async fn all_pages(emu: &RunningEmulator, at: &str, url: &str, page: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut next = Some(url.to_owned());
    let prefer = format!("odata.maxpagesize={page}");
    while let Some(u) = next {
        let (status, v, h) = ln_get(emu, at, &u, &[("Prefer", &prefer)]).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(h["preference-applied"], prefer.as_str());
        out.extend(v["value"].as_array().unwrap().iter().cloned());
        next = v["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    (out, pages)
}

#[tokio::test]
async fn business_partners_page_with_next_links() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (all, pages) = all_pages(&emu, &at, BP, "30").await;
    let n = emu.dataset().count(Entity::Customer, 100) as usize;
    assert_eq!(all.len(), n);
    assert_eq!(pages, n.div_ceil(30));
    let first = &all[0];
    assert_eq!(first["BusinessPartner"], "C000000001");
    assert!(first["@odata.etag"].as_str().unwrap().starts_with("W/"));
    let lm = first["LastModifiedDateTime"].as_str().unwrap();
    assert!(lm.ends_with('Z') && lm.contains('T'), "{lm}");
    // every entity has the last-modified timestamp
    assert!(all.iter().all(|e| e["LastModifiedDateTime"].is_string()));
    // the same logical record as M3's customer
    let (_, m3) = get_json(
        &emu,
        &at,
        "/M3/m3api-rest/v2/execute/CRS610MI/GetBasicData?CUNO=C000000001&righttrim=true",
    )
    .await;
    assert_eq!(first["Name"], m3["results"][0]["records"][0]["CUNM"]);
}

#[tokio::test]
async fn filter_select_count_top_skip() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (s, v, _) = ln_get(&emu, &at, &format!("{BP}?$filter=BusinessPartner ge 'C000000010' and BusinessPartner lt 'C000000020'&$count=true&$select=BusinessPartner,Name"), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(v["@odata.count"], 10);
    let vals = v["value"].as_array().unwrap();
    assert_eq!(vals.len(), 10);
    let keys: Vec<&String> = vals[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "etag + selected: {keys:?}");
    // numbers, dates, timestamps
    let (_, v, _) = ln_get(
        &emu,
        &at,
        &format!("{BP}?$filter=CreditLimit gt 5000 and CreationDate le 2025-06-30&$top=50"),
        &[],
    )
    .await;
    for e in v["value"].as_array().unwrap() {
        assert!(e["CreditLimit"].as_f64().unwrap() > 5000.0);
        assert!(e["CreationDate"].as_str().unwrap() <= "2025-06-30");
    }
    let (_, v, _) = ln_get(
        &emu,
        &at,
        &format!("{BP}?$filter=LastModifiedDateTime ge 2026-01-01T00:00:00Z&$count=true"),
        &[],
    )
    .await;
    assert_eq!(v["@odata.count"], 0, "base stamps are before 2026");
    let (_, v, _) = ln_get(
        &emu,
        &at,
        &format!("{BP}?$filter=LastModifiedDateTime lt 2026-01-01T00:00:00Z&$count=true&$top=1"),
        &[],
    )
    .await;
    assert_eq!(v["@odata.count"], 200);
    let (_, v, _) = ln_get(
        &emu,
        &at,
        &format!("{BP}?$filter=City eq 'Hamburg' or City eq 'Munich'&$top=20"),
        &[],
    )
    .await;
    for e in v["value"].as_array().unwrap() {
        assert_eq!(e["Country"], "DE");
    }
    let (_, v, _) = ln_get(&emu, &at, &format!("{BP}?$skip=5&$top=3"), &[]).await;
    let ids: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["BusinessPartner"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C000000006", "C000000007", "C000000008"]);
    assert!(v.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn orderby_with_top_pages_in_order() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (rows, pages) = all_pages(
        &emu,
        &at,
        &format!("{BP}?$orderby=Name desc,BusinessPartner&$top=25"),
        "10",
    )
    .await;
    assert_eq!(rows.len(), 25);
    assert_eq!(pages, 3);
    let names: Vec<&str> = rows.iter().map(|e| e["Name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn company_header_and_errors() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (_, a, _) = ln_get(
        &emu,
        &at,
        &format!("{BP}?$top=1"),
        &[("X-Infor-LnCompany", "100")],
    )
    .await;
    let (_, b, _) = ln_get(
        &emu,
        &at,
        &format!("{BP}?$top=1&$count=true"),
        &[("X-Infor-LnCompany", "200")],
    )
    .await;
    assert_ne!(a["value"][0]["Name"], b["value"][0]["Name"]);
    assert_eq!(
        b["@odata.count"],
        emu.dataset().count(Entity::Customer, 200)
    );
    for (hdr, code) in [("abc", 400), ("300", 400), ("10000", 400)] {
        let (s, e, _) = ln_get(&emu, &at, BP, &[("X-Infor-LnCompany", hdr)]).await;
        assert_eq!(s, code);
        assert!(e["error"]["code"].is_string() && e["error"]["message"].is_string());
    }
    let (s, e, _) = ln_get(
        &emu,
        &at,
        "/LN/lnapi/odata/tdapi.slsSalesOrder/Orders",
        &[("X-Infor-LnCompany", "200")],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["code"], "ServiceNotActivated");
    let (s, e, _) = ln_get(
        &emu,
        &at,
        "/LN/lnapi/odata/tcapi.comBusinessPartner/Nope",
        &[],
    )
    .await;
    assert_eq!(s, 404);
    assert!(e["error"]["details"].is_array());
    for bad in [
        "$filter=Nope eq 1",
        "$filter=Name xx 'a'",
        "$top=-1",
        "$select=Nope",
        "$orderby=Name sideways",
        "$search=x",
    ] {
        let (s, e, _) = ln_get(&emu, &at, &format!("{BP}?{bad}"), &[]).await;
        assert_eq!(s, 400, "{bad}");
        assert!(e["error"]["message"].is_string(), "{bad}");
    }
}

#[tokio::test]
async fn orders_and_items() {
    let emu = start_default().await;
    let at = access_token(&emu).await;
    let (orders, _) = all_pages(
        &emu,
        &at,
        "/LN/lnapi/odata/tdapi.slsSalesOrder/Orders?$select=SalesOrder,LastModifiedDateTime",
        "100",
    )
    .await;
    assert_eq!(
        orders.len() as u64,
        emu.dataset().count(Entity::OrderHead, 100)
    );
    let (s, items, _) = ln_get(
        &emu,
        &at,
        "/LN/lnapi/odata/tcapi.ibdItem/Items?$filter=Item eq 'I000000002'",
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(items["value"].as_array().unwrap().len(), 1);
    assert!(items["value"][0]["Weight"].is_number());
}
