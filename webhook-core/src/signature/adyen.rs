//! Adyen: the signature is in each notification item of the body,
//! `notificationItems[].NotificationRequestItem.additionalData.hmacSignature`, the base64
//! HMAC-SHA256, under the hex HMAC key, of
//! `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`
//! (absent values empty). Every item must verify; at most
//! [`MAX_SIGNATURE_ENTRIES`](super::MAX_SIGNATURE_ENTRIES) items are read (more is malformed).
//! Adyen wants `[accepted]` back.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::{
    Algorithm, Answers, Family, Keys, MAX_SIGNATURE_ENTRIES, Place, Places, Rejection, Signed, ToSign, Verified, check,
};

pub(super) const FAMILY: Family = Family {
    check_secret: Some(check_secret),
    answers: Answers {
        accepted: Some(("text/plain; charset=utf-8", "[accepted]")),
        empty_unauthorized: false,
    },
    ..Family::new(
        "adyen",
        Places {
            delivery_id: None,
            event_type: Some(Place::Json("/notificationItems/0/NotificationRequestItem/eventCode")),
        },
        Places::NOWHERE,
        verify,
        sign,
    )
};

fn check_secret(secret: &str) -> Result<(), &'static str> {
    hex::decode(secret)
        .map(|_| ())
        .map_err(|_| "adyen HMAC keys are hex, as the Customer Area shows them")
}

fn hex_key(secret: &str) -> Option<Vec<u8>> {
    hex::decode(secret).ok()
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(rename = "notificationItems", borrow)]
    items: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "NotificationRequestItem", borrow)]
    item: RequestItem<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestItem<'a> {
    #[serde(borrow, default)]
    psp_reference: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    original_reference: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    merchant_account_code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    merchant_reference: Option<Cow<'a, str>>,
    #[serde(default)]
    amount: Option<Amount<'a>>,
    #[serde(borrow, default)]
    event_code: Option<Cow<'a, str>>,
    #[serde(default)]
    success: Option<serde_json::Value>,
    #[serde(default)]
    additional_data: Option<AdditionalData<'a>>,
}

#[derive(Deserialize)]
struct Amount<'a> {
    #[serde(default)]
    value: Option<serde_json::Number>,
    #[serde(borrow, default)]
    currency: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AdditionalData<'a> {
    #[serde(rename = "hmacSignature", borrow, default)]
    hmac_signature: Option<Cow<'a, str>>,
}

impl RequestItem<'_> {
    /// Adyen's signing string for the item.
    fn signing_string(&self) -> String {
        let text = |value: &Option<Cow<'_, str>>| value.as_deref().unwrap_or_default().to_owned();
        let (value, currency) = match &self.amount {
            Some(amount) => (
                amount.value.as_ref().map(ToString::to_string).unwrap_or_default(),
                text(&amount.currency),
            ),
            None => (String::new(), String::new()),
        };
        let success = match &self.success {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Bool(flag)) => flag.to_string(),
            _ => String::new(),
        };
        [
            text(&self.psp_reference),
            text(&self.original_reference),
            text(&self.merchant_account_code),
            text(&self.merchant_reference),
            value,
            currency,
            text(&self.event_code),
            success,
        ]
        .join(":")
    }
}

fn verify(keys: &Keys, request: &Signed<'_>) -> Result<Verified, Rejection> {
    let notification: Notification<'_> = serde_json::from_slice(request.body).map_err(|_| Rejection::Malformed)?;
    if notification.items.is_empty() || notification.items.len() > MAX_SIGNATURE_ENTRIES {
        return Err(Rejection::Malformed);
    }
    let mut first = None;
    for Item { item } in &notification.items {
        let signature = item
            .additional_data
            .as_ref()
            .and_then(|data| data.hmac_signature.as_deref())
            .ok_or(Rejection::Missing)?;
        let tag = BASE64.decode(signature.trim()).map_err(|_| Rejection::Malformed)?;
        let verified = check(
            &keys.secrets,
            hex_key,
            Algorithm::Sha256,
            &[item.signing_string().as_bytes()],
            &[tag],
        )?;
        first.get_or_insert(verified);
    }
    first.ok_or(Rejection::Malformed)
}

/// Adyen signs inside the body, which the sender builds: no headers (see [`adyen_signature`]).
fn sign(_secret: &str, _request: &ToSign<'_>) -> Vec<(String, String)> {
    Vec::new()
}

/// The `hmacSignature` of an item whose signing string is `signing_string`, under the hex key.
pub fn adyen_signature(hex_key: &str, signing_string: &str) -> Option<String> {
    let key = hex::decode(hex_key).ok()?;
    Some(BASE64.encode(Algorithm::Sha256.sign(&key, &[signing_string.as_bytes()])))
}

/// `body`, an Adyen notification, with every item's `additionalData.hmacSignature` set under
/// the hex key, as Adyen signs it (for loadgen and tests); `None` when `body` is not a
/// notification or the key is not hex. The signing string is read by the same code the check
/// uses, so what this signs is what [`verify`] accepts.
pub fn adyen_signed_body(hex_key: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut notification: serde_json::Value = serde_json::from_slice(body).ok()?;
    for entry in notification.get_mut("notificationItems")?.as_array_mut()? {
        let item = entry.get_mut("NotificationRequestItem")?;
        let text = item.to_string();
        let signing_string = serde_json::from_str::<RequestItem<'_>>(&text).ok()?.signing_string();
        let signature = adyen_signature(hex_key, &signing_string)?;
        let data = item
            .as_object_mut()?
            .entry("additionalData")
            .or_insert_with(|| serde_json::json!({}));
        data.as_object_mut()?
            .insert("hmacSignature".to_owned(), serde_json::Value::String(signature));
    }
    serde_json::to_vec(&notification).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, secrets};
    use super::*;

    // adyen-ruby-api-library's tests (spec/utils/hmac_validator_spec.rb), as published.
    const KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
    const SIGNING_STRING: &str = "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true";
    const SIGNATURE: &str = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=";

    fn item(signature: &str, value: u64) -> String {
        format!(
            r#"{{"NotificationRequestItem":{{"additionalData":{{"hmacSignature":"{signature}"}},"amount":{{"currency":"EUR","value":{value}}},"eventCode":"AUTHORISATION","eventDate":"2014-08-06T13:39:23+02:00","merchantAccountCode":"TestMerchant","merchantReference":"TestPayment-1407325143704","operations":["CANCEL","CAPTURE","REFUND"],"paymentMethod":"visa","pspReference":"7914073381342284","reason":"1234:7777:12/2012","success":"true"}}}}"#
        )
    }

    fn body(signature: &str, value: u64) -> String {
        format!(r#"{{"live":"false","notificationItems":[{}]}}"#, item(signature, value))
    }

    fn adyen(body: &str) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[];
        Scheme::Vendor(&FAMILY).verify(&secrets(&[KEY]), headers, body.as_bytes(), 0, 300)
    }

    #[test]
    fn adyens_published_vector_is_reproduced_and_its_notification_accepted() {
        assert_eq!(adyen_signature(KEY, SIGNING_STRING).as_deref(), Some(SIGNATURE));
        assert_eq!(adyen(&body(SIGNATURE, 1130)), Ok(Verified { secret_index: 0 }));
    }

    #[test]
    fn a_changed_amount_a_missing_signature_or_too_many_items_is_refused() {
        assert_eq!(adyen(&body(SIGNATURE, 1131)), Err(Rejection::Mismatch));
        assert_eq!(adyen(&body("!!", 1130)), Err(Rejection::Malformed));
        assert_eq!(
            adyen(r#"{"notificationItems":[{"NotificationRequestItem":{"pspReference":"1"}}]}"#),
            Err(Rejection::Missing)
        );
        assert_eq!(adyen("not json"), Err(Rejection::Malformed));
        let one = item(SIGNATURE, 1130);
        let many = |count: usize| {
            format!(
                r#"{{"live":"false","notificationItems":[{}]}}"#,
                vec![one.as_str(); count].join(",")
            )
        };
        assert_eq!(adyen(&many(MAX_SIGNATURE_ENTRIES)), Ok(Verified { secret_index: 0 }));
        assert_eq!(adyen(&many(MAX_SIGNATURE_ENTRIES + 1)), Err(Rejection::Malformed));
        assert!(check_secret("not hex").is_err());
    }

    #[test]
    fn a_notification_signed_here_is_verified_and_a_changed_item_is_not() {
        let unsigned = body("", 1130).replace(r#""additionalData":{"hmacSignature":""},"#, "");
        let two = unsigned.replace("]}", &format!(",{}]}}", item("", 990)));
        let signed = adyen_signed_body(KEY, two.as_bytes()).unwrap();
        let text = String::from_utf8(signed).unwrap();
        assert!(text.contains(SIGNATURE), "{text}");
        assert!(adyen(&text).is_ok());
        assert_eq!(adyen(&text.replace("990", "991")), Err(Rejection::Mismatch));
        assert_eq!(adyen_signed_body(KEY, b"{\"id\":1}"), None);
        assert_eq!(adyen_signed_body("not hex", unsigned.as_bytes()), None);
    }
}
