//! Square: `x-square-hmacsha256-signature` is the base64 HMAC-SHA256, under the subscription's
//! signature key, of the notification URL followed by the raw body. The URL is the source's
//! `url` (with the request's query string), as Square was given it.

use super::body_hmac::preset;
use super::{Encoding, Family, GenericHmac, Place, Places};

preset!(
    FAMILY_BASE,
    "square",
    GenericHmac {
        encoding: Encoding::Base64,
        template: Some("{url}{body}".to_owned()),
        ..GenericHmac::new("x-square-hmacsha256-signature")
    },
    Places {
        delivery_id: Some(Place::Json("/event_id")),
        event_type: Some(Place::Json("/type")),
    },
    Places::NOWHERE
);

pub(super) const FAMILY: Family = Family {
    signs_url: true,
    ..FAMILY_BASE
};

#[cfg(test)]
mod tests {
    use super::super::{AsDyn, Keys, Rejection, Request, Scheme, ToSign, Verified, secrets};
    use super::*;

    // square-nodejs-sdk's tests (WebhooksHelper), as published.
    const KEY: &str = "Ibxx_5AKakO-3qeNVR61Dw";
    const URL: &str = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";
    const BODY: &[u8] = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#;
    const SIGNATURE: &str = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";

    fn square(signature: &str, url: &str, body: &[u8], key: &str) -> Result<Verified, Rejection> {
        let headers: &[(&str, &str)] = &[("x-square-hmacsha256-signature", signature)];
        let request = Request {
            headers: &AsDyn(headers),
            body,
            method: "POST",
            url: Some(url),
            webhook_id: None,
            now: 0,
            tolerance: 300,
        };
        Scheme::Vendor(&FAMILY).verify_request(&Keys::secrets(&secrets(&[key])), &request)
    }

    #[test]
    fn squares_published_vector_is_accepted_and_reproduced() {
        assert_eq!(square(SIGNATURE, URL, BODY, KEY), Ok(Verified { secret_index: 0 }));
        let signed = Scheme::Vendor(&FAMILY).sign(
            KEY,
            &ToSign {
                url: Some(URL),
                ..ToSign::new("", 0, BODY)
            },
        );
        assert_eq!(
            signed,
            [("x-square-hmacsha256-signature".to_owned(), SIGNATURE.to_owned())]
        );
    }

    #[test]
    fn squares_negative_cases_are_refused() {
        // The SDK's own: another URL, another key, a changed body, an empty signature.
        assert_eq!(
            square(
                SIGNATURE,
                "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9",
                BODY,
                KEY
            ),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            square(SIGNATURE, URL, BODY, "MCmhFRxGX82xMwg5FsaoQA"),
            Err(Rejection::Mismatch)
        );
        let mut body = BODY.to_vec();
        body.push(b' ');
        assert_eq!(square(SIGNATURE, URL, &body, KEY), Err(Rejection::Mismatch));
        assert_eq!(square("", URL, BODY, KEY), Err(Rejection::Mismatch));
    }
}
