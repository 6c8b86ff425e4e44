"""Reason codes of DESIGN §4.1 with their default severities and bilingual messages.

Messages are written for a village verifier standing at the house: each says what is
wrong and what to do next, so a retake can happen on the spot.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DEFAULT_SEVERITY", "MESSAGES", "Message", "ReasonCode", "Severity"]


class Severity(enum.StrEnum):
    REJECT = "reject"
    REVIEW = "review"


class ReasonCode(enum.StrEnum):
    UNREADABLE = "UNREADABLE"
    TOO_SMALL = "TOO_SMALL"
    BLURRY = "BLURRY"
    TOO_DARK = "TOO_DARK"
    TOO_BRIGHT = "TOO_BRIGHT"
    NO_HOUSE = "NO_HOUSE"
    SCREEN_PHOTO = "SCREEN_PHOTO"
    TILTED = "TILTED"
    NO_GPS = "NO_GPS"
    GPS_INVALID = "GPS_INVALID"
    GPS_OUTSIDE_AREA = "GPS_OUTSIDE_AREA"
    MOCK_LOCATION = "MOCK_LOCATION"
    NO_CAPTURE_TIME = "NO_CAPTURE_TIME"
    CAPTURE_TIME_IMPLAUSIBLE = "CAPTURE_TIME_IMPLAUSIBLE"
    EDITED = "EDITED"
    DUPLICATE_PHOTO = "DUPLICATE_PHOTO"
    SAME_SCENE = "SAME_SCENE"


R, V = Severity.REJECT, Severity.REVIEW

DEFAULT_SEVERITY: dict[ReasonCode, Severity] = {
    ReasonCode.UNREADABLE: R,
    ReasonCode.TOO_SMALL: R,
    ReasonCode.BLURRY: R,
    ReasonCode.TOO_DARK: R,
    ReasonCode.TOO_BRIGHT: R,
    ReasonCode.NO_HOUSE: R,
    ReasonCode.SCREEN_PHOTO: R,
    ReasonCode.TILTED: V,
    ReasonCode.NO_GPS: V,
    ReasonCode.GPS_INVALID: V,
    ReasonCode.GPS_OUTSIDE_AREA: V,
    ReasonCode.MOCK_LOCATION: V,
    ReasonCode.NO_CAPTURE_TIME: V,
    ReasonCode.CAPTURE_TIME_IMPLAUSIBLE: V,
    ReasonCode.EDITED: V,
    ReasonCode.DUPLICATE_PHOTO: R,
    ReasonCode.SAME_SCENE: V,
}


@dataclass(frozen=True)
class Message:
    zh: str
    en: str


MESSAGES: dict[ReasonCode, Message] = {
    ReasonCode.UNREADABLE: Message(
        "照片文件无法读取（损坏、不完整或不是图片），请重新拍摄并上传",
        "The file cannot be read (damaged, incomplete or not a picture): take the photo again and upload it",
    ),
    ReasonCode.TOO_SMALL: Message(
        "照片分辨率太低，请用手机相机原图重新拍摄，不要截图或压缩",
        "The photo's resolution is too low: retake it with the phone camera and upload the original, not a screenshot or compressed copy",
    ),
    ReasonCode.BLURRY: Message(
        "照片模糊，请稳住手机、对准房屋重新拍摄",
        "Photo is blurred: hold the phone steady, focus on the house and retake",
    ),
    ReasonCode.TOO_DARK: Message(
        "照片太暗，请在光线充足时重新拍摄，必要时打开闪光灯",
        "Photo is too dark: retake it in better light, with the flash if needed",
    ),
    ReasonCode.TOO_BRIGHT: Message(
        "照片曝光过度，请避开逆光和强光直射重新拍摄",
        "Photo is over-exposed: avoid shooting into the sun or strong light and retake",
    ),
    ReasonCode.NO_HOUSE: Message(
        "照片中没有房屋，请站在户门前拍摄房屋正面全貌",
        "No house in the photo: stand in front of the house and photograph its whole front",
    ),
    ReasonCode.SCREEN_PHOTO: Message(
        "照片是截图、翻拍屏幕或翻拍照片，请到现场直接拍摄房屋",
        "This is a screenshot or a photo of a screen or print: photograph the house itself on site",
    ),
    ReasonCode.TILTED: Message(
        "照片明显倾斜，请端平手机重新拍摄",
        "Photo is tilted: hold the phone level and retake",
    ),
    ReasonCode.NO_GPS: Message(
        "照片没有定位信息，请打开手机定位后在现场拍摄",
        "Photo has no location: turn on the phone's location and take it on site",
    ),
    ReasonCode.GPS_INVALID: Message(
        "照片定位信息无效，请确认手机定位正常后重新拍摄",
        "Photo's location is invalid: check that the phone's location works and retake",
    ),
    ReasonCode.GPS_OUTSIDE_AREA: Message(
        "照片拍摄位置离本户或本村太远，请在本户现场拍摄",
        "Photo was taken too far from the household or village: take it at the house",
    ),
    ReasonCode.MOCK_LOCATION: Message(
        "手机报告使用了模拟定位，请关闭虚拟定位后在现场拍摄",
        "The phone reports a mock location: turn it off and take the photo on site",
    ),
    ReasonCode.NO_CAPTURE_TIME: Message(
        "照片没有拍摄时间，请用手机相机直接拍摄，不要上传转存的图片",
        "Photo has no capture time: take it with the phone camera instead of uploading a saved copy",
    ),
    ReasonCode.CAPTURE_TIME_IMPLAUSIBLE: Message(
        "照片拍摄时间不合理（过早或在未来），请检查手机时间后重新拍摄",
        "Photo's capture time is implausible (too early or in the future): check the phone's clock and retake",
    ),
    ReasonCode.EDITED: Message(
        "照片经过编辑软件处理，请上传相机拍摄的原图",
        "Photo was processed by editing software: upload the camera's original",
    ),
    ReasonCode.DUPLICATE_PHOTO: Message(
        "这张照片已被其他农户使用，请为本户现场拍摄新照片",
        "This photo is already used for another household: take a new photo of this household's house",
    ),
    ReasonCode.SAME_SCENE: Message(
        "照片与其他农户的房屋照片拍的是同一处，请核实后上报",
        "Photo shows the same house as another household's photo: it will be checked by the county",
    ),
}
